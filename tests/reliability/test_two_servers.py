"""Two real ComfyUI servers on one base directory (one per GPU is common) train one profile.

Server A is stopped inside a round commit by the fault hook (`pause`, holding the profile's lock)
while server B records labels and trains: B waits, then trains on top of A's round. Then both
queue rounds at once, several times. Every label is recorded exactly once and trained (in the
last round's replay or still pending), every committed round is kept, and a round whose profile
moved on while it trained is refused with a message (and trains when queued again).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from host.papa_graphs import labelled_round

from comfy_papa.profile.store import Profile
from harness.graph import queue, wait

FT = dict(steps=1, batch_size=2, timesteps_per_sample=1)
NAME = "two-servers"
pytestmark = pytest.mark.slow


def _open(server) -> Profile:
    return Profile.open(server.base / "models" / "papa_profiles", NAME, create=False)


def _check(profile: Profile) -> None:
    rows = [(r["request_id"], r["candidate"]) for r in profile.history()]
    assert len(rows) == len(set(rows)), f"duplicated history rows: {rows}"
    trained = set(profile.load_round().replay.ids)
    trained |= {f"{p.request_id}:{c}" for p in profile.pending() for c in p.ids}
    lost = [f"{rid}:{cid}" for rid, cid in rows if f"{rid}:{cid}" not in trained]
    assert not lost, f"labels neither trained nor pending: {lost}"
    for r in range(1, profile.round + 1):
        profile.load_round(r)  # every round kept, checksums verify
    assert not (profile.dir / "archive").exists()


def test_two_servers_on_one_base_directory_lose_no_label_and_no_round(
    own_comfy, tmp_path, checkpoint_name
):
    faults = [tmp_path / "fault-a.json", tmp_path / "fault-b.json"]
    a = own_comfy(env={"COMFY_PAPA_FAULT_FILE": str(faults[0])})
    b = own_comfy(env={"COMFY_PAPA_FAULT_FILE": str(faults[1])})
    assert a.base == b.base and a.port != b.port
    gate = tmp_path / "release"
    faults[0].write_text(
        json.dumps(
            {"id": "a", "pattern": "commit:tmpdir-created", "action": "pause", "pause": str(gate)}
        )
    )
    pa = queue(a.url, labelled_round(checkpoint_name, NAME, "+ -", seed=1, **FT))
    reached = gate.with_name("release.reached")
    deadline = time.monotonic() + 180
    while not reached.exists():
        assert time.monotonic() < deadline, "server A never reached its commit"
        time.sleep(0.1)
    pb = queue(b.url, labelled_round(checkpoint_name, NAME, "- +", seed=2, **FT))
    time.sleep(2.0)  # B records and trains only once A's commit is through
    faults[0].write_text("{}")
    gate.touch()
    ra, rb = wait(a.url, pa, 180), wait(b.url, pb, 180)
    assert ra.ok, ra.error()
    assert rb.ok, rb.error()
    p = _open(a)
    assert p.round == 2 and len(p.load_round().replay) == 4
    _check(p)

    # Then both at once, three times each, retrying a refused round as an artist would.
    refused = 0
    for i in range(3):
        runs = [
            (s, queue(s.url, labelled_round(checkpoint_name, NAME, lab, seed=10 + 2 * i + j, **FT)))
            for j, (s, lab) in enumerate([(a, "+ - +"), (b, "- + -")])
        ]
        for s, prompt_id in runs:
            r = wait(s.url, prompt_id, 300)
            if not r.ok:
                msg = r.error()["exception_message"]
                assert "moved to round" in msg and "Queue the fine-tune again" in msg, msg
                refused += 1
                seed = uuid.uuid4().int % 999
                again = labelled_round(checkpoint_name, NAME, "+ +", seed=seed, **FT)
                assert wait(s.url, queue(s.url, again), 300).ok
    p = _open(b)
    assert p.round == 2 + 6, (p.round, refused)  # a refused round is trained when queued again
    print(f"two servers: {refused} of 6 simultaneous rounds refused and queued again")
    _check(p)
