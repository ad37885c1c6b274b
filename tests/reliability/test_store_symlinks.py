"""Symbolic links in a profile are refused: no write, read or recovery follows one out of it."""

import os

import pytest
import torch

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import Profile
from tests.reliability.store_crash_driver import next_round


def _make(tmp_path) -> Profile:
    p = Profile.open(tmp_path / "profiles", "artist")
    p.record_feedback("req1", 1, ["a", "b"], [1.0, -1.0], torch.zeros(2, 4, 2, 2))
    state, consumed = next_round(p)
    p.commit_round(state, "fp", {}, consumed)
    p.record_feedback("req2", 2, ["a", "b"], [1.0, 1.0], torch.zeros(2, 4, 2, 2))
    return p


def _tree(path) -> dict:
    return {
        str(f.relative_to(path)): f.read_bytes() if f.is_file() else None
        for f in sorted(path.rglob("*"))
    }


def _use(p: Profile) -> None:
    """Everything the nodes do: open (recovery), read, record, commit, roll back."""
    q = Profile.open(p.root, p.name, create=False)
    q.history()
    q.pending()
    q.record_feedback("req3", 2, ["a"], [1.0], torch.zeros(1, 4, 2, 2))
    state, consumed = next_round(q)
    q.commit_round(state, "fp", {}, consumed)
    q.rollback(0)


@pytest.mark.parametrize(
    "inside", ["history.jsonl", "manifest.json", "pending", "rounds", "rounds/r0001", "archive"]
)
def test_a_linked_file_or_folder_inside_a_profile_is_refused(tmp_path, inside):
    p = _make(tmp_path)
    outside = tmp_path / "outside"
    target = p.dir / inside
    if target.exists():
        os.replace(target, outside)
    else:
        outside.mkdir()
    os.symlink(outside, target)
    before_profile, before_outside = _tree(p.dir), _tree(tmp_path / "outside")
    with pytest.raises(ProfileError) as err:
        _use(p)
    msg = str(err.value)
    assert "symbolic link" in msg and inside.split("/")[-1] in msg and "Nothing" in msg, msg
    with pytest.raises(ProfileError, match="symbolic link"):
        p.record_feedback("req4", 2, ["a"], [1.0], torch.zeros(1, 4, 2, 2))  # an open profile
    assert _tree(p.dir) == before_profile
    assert _tree(tmp_path / "outside") == before_outside


def test_a_linked_profile_folder_is_refused_and_nothing_is_written_through_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "profiles").mkdir()
    os.symlink(elsewhere, tmp_path / "profiles" / "artist")
    for create in (True, False):
        with pytest.raises(ProfileError, match="symbolic link"):
            Profile.open(tmp_path / "profiles", "artist", create=create)
    assert list(elsewhere.iterdir()) == []


def test_a_linked_profiles_root_is_allowed(tmp_path):
    """The root itself (models/papa_profiles, or extra_model_paths) may live anywhere."""
    real = tmp_path / "disk2"
    real.mkdir()
    os.symlink(real, tmp_path / "profiles")
    p = Profile.open(tmp_path / "profiles", "artist")
    p.record_feedback("req1", 1, ["a"], [1.0], torch.zeros(1, 4, 2, 2))
    assert (real / "artist" / "history.jsonl").exists()
