"""Threads of one server touch one profile at once (HTTP answers, prompt validation, training).

Opening a profile runs crash recovery; it must never mistake a live write of another thread for
a crash's leftovers (delete its temp files, or complete its history twice).
"""

import threading

import torch

from comfy_papa.profile.store import Profile
from tests.reliability.store_crash_driver import next_round


def test_open_during_writes_of_another_thread_breaks_nothing(tmp_path):
    Profile.open(tmp_path, "shared")
    errors: list[BaseException] = []
    stop = threading.Event()

    def opener():
        while not stop.is_set():
            try:
                Profile.open(tmp_path, "shared", create=False)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=opener) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            p = Profile.open(tmp_path, "shared", create=False)
            p.record_feedback(
                f"req{i}",
                p.round + 1,
                ["a", "b", "c"],
                [1.0, -1.0, 0.0],
                torch.zeros(3, 4, 2, 2),
                {"cross_attn": torch.ones(1, 2, 3)},
            )
            if i % 10 == 9:
                state, consumed = next_round(p)
                p.commit_round(state, "fp", {}, consumed)
    except BaseException as e:  # noqa: BLE001
        errors.append(e)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    p = Profile.open(tmp_path, "shared", create=False)
    rows = [(r["request_id"], r["candidate"]) for r in p.history()]
    assert len(rows) == len(set(rows)) == 120, f"{len(rows)} rows, {len(set(rows))} distinct"
    assert p.round == 4 and len(p.load_round().replay) == 120
