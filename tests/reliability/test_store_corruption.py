"""Each kind of profile file corrupted in each way: a clear error naming the file and the round to
roll back to, and nothing on disk changed (not even by the recovery that runs on open)."""

import pytest
import torch

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile
from tests.reliability.store_crash_driver import commit_labelled_round


def _make(tmp_path) -> Profile:
    p = Profile.open(tmp_path, "artist")
    for r in (1, 2):
        commit_labelled_round(p, f"req{r}", r, settings={})
    p.record_feedback("req3", 3, ["a", "b"], [1.0, 1.0], torch.zeros(2, 4, 2, 2))
    return p


def _truncate(b):
    return b[: len(b) // 2]


def _flip(b):  # one byte in the middle of the data (headers stay parseable)
    i = len(b) - max(1, len(b) // 8)
    return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1 :]


DAMAGE = {"truncated": _truncate, "bitflip": _flip, "empty": lambda b: b"", "garbage": None}
ROUND_FILES = ["adapter", "optimizer", "replay", "conds"]
KINDS = ["manifest.json", "history.jsonl", "round.json", "pending"] + ROUND_FILES


def _target(p: Profile, kind: str):
    if kind == "manifest.json":
        return p.dir / "manifest.json"
    if kind == "history.jsonl":
        return p.dir / "history.jsonl"
    if kind == "pending":
        return p.dir / "pending" / "req3.safetensors"
    if kind == "round.json":
        return p.round_dir(2) / "round.json"
    return p.round_dir(2) / f"{kind}.safetensors"


def _use(tmp_path, kind):
    """What the nodes do with the profile: open it, then read what the kind is needed for."""
    q = Profile.open(tmp_path, "artist", create=False)
    if kind == "history.jsonl":
        q.history()
    elif kind == "pending":
        q.pending()
    else:
        q.load_round()


@pytest.mark.parametrize("how", list(DAMAGE))
@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_file_is_named_with_the_round_to_roll_back_to(tmp_path, kind, how):
    p = _make(tmp_path)
    path = _target(p, kind)
    data = path.read_bytes()
    bad = DAMAGE[how](data) if DAMAGE[how] else b"\x00garbage\xff" * 7
    if kind == "history.jsonl" and how in ("truncated", "empty"):
        # a cut at a line end is a shorter, valid history; a cut mid-line is a torn last line
        # that recovery drops (never acknowledged): corrupt a middle line instead
        lines = data.split(b"\n")
        lines[1] = lines[1][: len(lines[1]) // 2]
        bad = b"\n".join(lines)
    path.write_bytes(bad)
    before = {f: f.read_bytes() for f in p.dir.rglob("*") if f.is_file()}
    with pytest.raises(ProfileError) as err:
        _use(tmp_path, kind)
    msg = str(err.value)
    assert path.name in msg, msg
    if kind in ROUND_FILES or kind == "round.json":
        assert "roll back to round 1" in msg, msg
    elif kind == "manifest.json":
        assert "last complete round on disk is 2" in msg, msg
    else:
        assert "Nothing was changed" in msg, msg
    assert {f: f.read_bytes() for f in p.dir.rglob("*") if f.is_file()} == before
