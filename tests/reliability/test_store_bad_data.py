"""The store refuses data it must never keep, and survives a full disk (a real 2 MB tmpfs)."""

import os
import subprocess
import uuid

import pytest
import torch

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile
from tests.reliability.store_crash_driver import next_round


def _record(p, rid, latents, labels=None):
    n = latents.shape[0]
    p.record_feedback(
        rid,
        p.round + 1,
        [f"c{i}" for i in range(n)],
        labels or [1.0, -1.0] * (n // 2),
        latents,
        {"cross_attn": torch.ones(1, 2, 3)},
    )


def _files(d):
    return {f: f.read_bytes() for f in d.rglob("*") if f.is_file()}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_latents_are_refused_and_nothing_is_recorded(tmp_path, bad):
    p = Profile.open(tmp_path, "artist")
    lat = torch.zeros(2, 4, 2, 2)
    lat[1, 0, 0, 0] = bad
    with pytest.raises(ProfileError, match="non-finite"):
        _record(p, "req1", lat)
    assert p.history() == [] and p.pending() == []
    _record(p, "req1", torch.zeros(2, 4, 2, 2))  # the same request id may then be answered
    assert len(p.history()) == 2


def test_non_finite_adapter_is_never_committed(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _record(p, "req1", torch.zeros(2, 4, 2, 2))
    state, consumed = next_round(p)
    state.adapter["m.lora_up.weight"][0, 0] = float("nan")
    before = _files(p.dir)
    with pytest.raises(ProfileError, match="non-finite"):
        p.commit_round(state, "fp", {}, consumed)
    assert _files(p.dir) == before
    assert Profile.open(tmp_path, "artist").round == 0


def test_latents_of_another_size_are_refused_when_recorded(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _record(p, "req1", torch.zeros(2, 4, 4, 4))  # trained at 32x32 ...
    state, consumed = next_round(p)
    p.commit_round(state, "fp", {}, consumed)
    with pytest.raises(ProfileError, match=r"4, 8, 8.*4, 4, 4|size"):
        _record(p, "req2", torch.zeros(2, 4, 8, 8))  # ... labelled at 64x64
    assert p.pending() == [] and len(p.history()) == 2
    _record(p, "req3", torch.zeros(2, 4, 4, 4))  # pending latents set the size before round 1
    q = Profile.open(tmp_path, "fresh")
    _record(q, "a", torch.zeros(2, 4, 4, 4))
    with pytest.raises(ProfileError):
        _record(q, "b", torch.zeros(2, 4, 8, 8))


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB tmpfs (needs root); skipped where mounting is not allowed."""
    mnt = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(mnt)], check=False)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the fault hook covers ENOSPC")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_while_committing_keeps_the_previous_round(small_disk):
    p = Profile.open(small_disk, "artist")
    _record(p, "req1", torch.zeros(2, 4, 4, 4))
    state, consumed = next_round(p)
    p.commit_round(state, "fp", {}, consumed)
    # A round whose optimizer state is larger than the free space left: ENOSPC mid-commit.
    _record(p, "req2", torch.ones(2, 4, 4, 4))
    state, consumed = next_round(p)
    state.optimizer["big::exp_avg"] = torch.zeros(700_000)  # 2.8 MB
    with pytest.raises(ProfileError, match="[Dd]isk full") as err:
        p.commit_round(state, "fp", {}, consumed)
    assert "round 1" in str(err.value)
    q = Profile.open(small_disk, "artist")
    assert q.round == 1 and len(q.load_round().replay) == 2
    assert [x.request_id for x in q.pending()] == ["req2"]
    assert not list(small_disk.rglob(".tmp-*"))
    state, consumed = next_round(q)  # with the space back, the round goes through
    q.commit_round(state, "fp", {}, consumed)
    assert Profile.open(small_disk, "artist").round == 2


def test_disk_full_while_recording_labels_records_nothing_and_can_be_retried(small_disk):
    p = Profile.open(small_disk, "artist")
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 6000))  # room for the pending file, not the history
    lat = torch.zeros(8, 4, 4, 4)
    history_before = (p.dir / "history.jsonl").exists()
    for _ in range(40):  # fill until one answer fails
        try:
            _record(p, f"req{uuid.uuid4().hex[:8]}", lat)
        except ProfileError as e:
            assert "disk full" in str(e).lower(), e
            break
    else:
        pytest.fail("the disk never filled")
    rows = Profile.open(small_disk, "artist").history()  # parses: no torn line in the middle
    done = {r["request_id"] for r in rows}
    assert {x.request_id for x in p.pending()} == done, "a failed answer left a pending file"
    assert all(sum(r["request_id"] == d for r in rows) == 8 for d in done)
    assert not list(small_disk.rglob(".tmp-*"))
    filler.unlink()
    _record(p, "retry", lat)
    assert len(Profile.open(small_disk, "artist").history()) == 8 * (len(done) + 1)
    assert history_before is False
