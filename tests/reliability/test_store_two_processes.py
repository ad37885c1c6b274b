"""Two processes on one profile (two ComfyUI servers on one install, or a server and a diffusers
script): the profile's file lock makes each write and each recovery wait for the other.

A second process (lock_driver.py) is stopped at a chosen write point by the store's fault hook
(`pause`), holding the lock; this process then opens, records or commits. Without the lock, the
opener's recovery would take the other's renamed round for a crash's leftover, complete a
half-recorded request's history a second time, and a stale commit would replace a newer round.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile
from tests.reliability.lock_driver import record
from tests.reliability.store_crash_driver import next_round

DRIVER = Path(__file__).with_name("lock_driver.py")
NAME = "shared"


class Paused:
    """lock_driver.py running OPs, standing at `point` until `release()`."""

    def __init__(self, tmp_path: Path, point: str, *ops: str) -> None:
        self.gate = tmp_path / f"release-{time.monotonic_ns()}"
        env = dict(os.environ, COMFY_PAPA_FAULT=point, COMFY_PAPA_FAULT_ACTION="pause")
        env["COMFY_PAPA_FAULT_PAUSE"] = str(self.gate)
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), str(tmp_path), NAME, *ops],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reached = Path(str(self.gate) + ".reached")
        deadline = time.monotonic() + 120
        while not reached.exists():
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "the driver never reached its point"
            time.sleep(0.02)

    def release(self) -> str:
        self.gate.touch()
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return out


def _in_thread(fn):
    """Run fn in a thread; returns (thread, box) where box gets its result or exception."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - checked by the test
            box["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, box


def _waits(t: threading.Thread) -> bool:
    t.join(1.0)
    return t.is_alive()


def test_opening_while_another_process_commits_waits_and_keeps_the_new_round(tmp_path):
    p = Profile.open(tmp_path, NAME)
    record(p, "req1")
    other = Paused(tmp_path, "commit:round-renamed", "commit")  # r0001 renamed, no manifest yet
    t, box = _in_thread(lambda: Profile.open(tmp_path, NAME, create=False))
    assert _waits(t), "the open did not wait for the other process's commit"
    other.release()
    t.join(60)
    q = box["result"]
    assert q.round == 1 and len(q.load_round().replay) == 2
    assert not (q.dir / "archive").exists(), "the new round was taken for a crash's leftover"


def test_opening_while_another_process_records_labels_adds_no_duplicate(tmp_path):
    Profile.open(tmp_path, NAME)
    other = Paused(tmp_path, "feedback:pending-saved", "record:req1")  # history not yet appended
    t, box = _in_thread(lambda: Profile.open(tmp_path, NAME, create=False).history())
    assert _waits(t), "the open did not wait for the other process's label write"
    other.release()
    t.join(60)
    rows = Profile.open(tmp_path, NAME).history()
    assert [(r["request_id"], r["candidate"]) for r in rows] == [("req1", "a"), ("req1", "b")]
    assert "error" not in box, box


def test_two_processes_answering_and_training_lose_no_label_and_no_round(tmp_path):
    stale = Profile.open(tmp_path, NAME)  # this process's view, opened at round 0
    record(stale, "reqA")
    state, consumed = next_round(stale)  # trains on reqA from round 0
    # The other process records reqB and commits round 1 (reqA and reqB), stopping mid-commit.
    other = Paused(tmp_path, "commit:tmpdir-created", "record:reqB", "commit")
    t, box = _in_thread(lambda: stale.commit_round(state, "fp", {}, consumed))
    assert _waits(t), "the commit did not wait for the other process's commit"
    assert other.release().split() == ["record:reqB", "commit"]
    t.join(60)
    assert isinstance(box.get("error"), ProfileError), box
    assert "moved to round 1" in str(box["error"])
    p = Profile.open(tmp_path, NAME)
    assert p.round == 1
    replay = p.load_round().replay
    assert sorted(replay.ids) == ["reqA:a", "reqA:b", "reqB:a", "reqB:b"]
    record(p, "reqC")
    state, consumed = next_round(p)  # queued again: round 2 on top of the other's round 1
    p.commit_round(state, "fp", {}, consumed)
    q = Profile.open(tmp_path, NAME)
    rows = [(r["request_id"], r["candidate"]) for r in q.history()]
    assert len(rows) == len(set(rows)) == 6
    assert sorted({i.split(":")[0] for i in q.load_round().replay.ids}) == ["reqA", "reqB", "reqC"]
    assert q.pending() == [] and not (q.dir / "archive").exists()


@pytest.mark.parametrize("writer", ["record", "commit"])
def test_a_lock_held_too_long_gives_a_clear_error_and_changes_nothing(tmp_path, writer):
    p = Profile.open(tmp_path, NAME)
    record(p, "req1")
    point = "feedback:pending-saved" if writer == "record" else "commit:round-renamed"
    other = Paused(tmp_path, point, "record:req2" if writer == "record" else "commit")
    env = dict(os.environ, COMFY_PAPA_LOCK_TIMEOUT="0.5")
    code = (
        "import sys; from pathlib import Path; from comfy_papa.profile.store import Profile; "
        "from comfy_papa.profile.names import ProfileError\n"
        "try:\n    Profile.open(Path(sys.argv[1]), 'shared', create=False)\n"
        "except ProfileError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env={**env, "PYTHONPATH": str(DRIVER.parents[2])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"pid {other.proc.pid}" in out.stdout and "is busy" in out.stdout, out
    assert "Nothing was changed" in out.stdout, out
    other.release()
    assert Profile.open(tmp_path, NAME).round == (1 if writer == "commit" else 0)
