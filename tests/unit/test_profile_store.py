"""The profile store on a plain folder: atomic rounds, rollback, recovery, refusal of bad input."""

import json

import pytest
import torch

from comfy_papa.core.replay import ReplayBuffer
from comfy_papa.core.settings import FinetuneSettings
from comfy_papa.profile.names import ProfileError, validate_profile_name
from comfy_papa.profile.store import Profile, RoundState


def _round(profile: Profile, value: float) -> RoundState:
    replay = ReplayBuffer()
    n = 2 * (profile.round + 1)
    replay.add(
        torch.full((n, 4, 2, 2), value),
        torch.tensor([1.0, -1.0] * (n // 2)),
        torch.full((n,), profile.round + 1),
        [f"c{profile.round}-{i}" for i in range(n)],
        {"group": torch.zeros(n, dtype=torch.long)},
    )
    return RoundState(
        profile.round + 1,
        adapter={"m.lora_up.weight": torch.full((3, 2), value)},
        adapter_meta={"rank": "2"},
        optimizer={"m.lora_up.weight::step": torch.tensor(float(value))},
        replay=replay,
        conds={"g0.cross_attn": torch.ones(1, 2, 3)},
    )


def _record(profile: Profile, rid: str, labels=(1.0, -1.0)):
    n = len(labels)
    profile.record_feedback(
        rid,
        profile.round + 1,
        [f"id{i}" for i in range(n)],
        list(labels),
        torch.zeros(n, 4, 2, 2),
        {"cross_attn": torch.ones(1, 2, 3)},
    )


def test_commit_then_reopen_gives_the_same_round(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _record(p, "req1")
    p.commit_round(_round(p, 1.0), "fp", {"method": "PAPA"}, ["req1"])
    q = Profile.open(tmp_path, "artist")
    assert q.round == 1
    state = q.load_round()
    assert torch.equal(state.adapter["m.lora_up.weight"], torch.full((3, 2), 1.0))
    assert len(state.replay) == 2 and q.pending() == []
    assert [h["label"] for h in q.history()] == [1.0, -1.0]


def test_rollback_archives_later_rounds_and_version_changes(tmp_path):
    p = Profile.open(tmp_path, "artist")
    for v in (1.0, 2.0, 3.0):
        p.commit_round(_round(p, v), "fp", {}, [])
    before = p.version
    p.rollback(1)
    assert p.round == 1 and p.version != before
    assert not (p.dir / "rounds" / "r0002").exists()
    archived = list((p.dir / "archive").rglob("r0003"))
    assert archived, "rolled-back rounds must be kept in archive/"
    p.commit_round(_round(p, 9.0), "fp", {}, [])
    assert Profile.open(tmp_path, "artist").load_round().adapter["m.lora_up.weight"][0, 0] == 9.0


def test_other_base_model_is_refused(tmp_path):
    p = Profile.open(tmp_path, "artist")
    p.commit_round(_round(p, 1.0), "fp-a", {}, [])
    with pytest.raises(ProfileError, match="another base model"):
        p.check_base("fp-b")


@pytest.mark.parametrize("kind", ["adapter", "optimizer", "replay", "conds"])
def test_corrupted_round_file_names_file_and_round_and_changes_nothing(tmp_path, kind):
    p = Profile.open(tmp_path, "artist")
    p.commit_round(_round(p, 1.0), "fp", {}, [])
    p.commit_round(_round(p, 2.0), "fp", {}, [])
    path = p.round_dir(2) / f"{kind}.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    snapshot = {f: f.read_bytes() for f in p.dir.rglob("*") if f.is_file()}
    with pytest.raises(ProfileError) as err:
        Profile.open(tmp_path, "artist").load_round()
    assert f"{kind}.safetensors" in str(err.value) and "round 1" in str(err.value)
    assert snapshot == {f: f.read_bytes() for f in p.dir.rglob("*") if f.is_file()}


def test_corrupted_manifest_is_reported_not_reset(tmp_path):
    p = Profile.open(tmp_path, "artist")
    p.commit_round(_round(p, 1.0), "fp", {}, [])
    (p.dir / "manifest.json").write_text("{not json")
    with pytest.raises(ProfileError, match="manifest.json"):
        Profile.open(tmp_path, "artist")
    assert (p.dir / "manifest.json").read_text() == "{not json"


def test_crash_leftovers_are_cleaned_on_open(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _record(p, "req1")
    p.commit_round(_round(p, 1.0), "fp", {}, ["req1"])
    # what a crash can leave: a temp round folder, a temp file, an uncommitted round, a torn line
    (p.dir / "rounds" / ".tmp-r0002-123").mkdir()
    (p.dir / ".tmp-99-manifest.json").write_text("{")
    (p.dir / "rounds" / "r0002").mkdir()
    with open(p.dir / "history.jsonl", "a") as f:
        f.write('{"torn": ')
    q = Profile.open(tmp_path, "artist")
    assert not list(q.dir.rglob(".tmp-*"))
    assert not (q.dir / "rounds" / "r0002").exists()
    assert len(q.history()) == 2 and q.round == 1


def test_pending_feedback_survives_until_committed(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _record(p, "req1")
    again = Profile.open(tmp_path, "artist").pending()
    assert [x.request_id for x in again] == ["req1"]
    assert again[0].labels.tolist() == [1.0, -1.0]
    with pytest.raises(ProfileError, match="already recorded"):
        _record(p, "req1")


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "..",
        ".hidden",
        "x\x00y",
        "a" * 65,
        "café",
        "",
        "ｆｕｌｌ",
        "con",
        "name.",
        "a..b",
    ],
)
def test_unsafe_profile_names_are_refused(tmp_path, name):
    with pytest.raises(ProfileError):
        validate_profile_name(name)
    with pytest.raises(ProfileError):
        Profile.open(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_manifest_is_plain_json(tmp_path):
    p = Profile.open(tmp_path, "artist")
    data = json.loads((p.dir / "manifest.json").read_text())
    assert data["round"] == 0 and data["name"] == "artist"


def test_settings_read_back_typed_with_defaults_for_what_an_older_round_lacks(tmp_path):
    p = Profile.open(tmp_path, "artist")
    assert p.settings == FinetuneSettings()  # no round yet: the defaults
    p.commit_round(_round(p, 1.0), "fp", FinetuneSettings(method="EPAPA", cut=0.3).as_dict(), [])
    assert Profile.open(tmp_path, "artist").settings == FinetuneSettings(method="EPAPA", cut=0.3)
    # a round recorded by an older version: fewer fields, one no longer read, alpha as an int
    p.commit_round(_round(p, 2.0), "fp", {"method": "EPAPA", "alpha": 4, "old_knob": 1}, [])
    s = Profile.open(tmp_path, "artist").settings
    assert s == FinetuneSettings(method="EPAPA", alpha=4.0)


def test_unreadable_recorded_settings_name_the_profile_and_the_field(tmp_path):
    p = Profile.open(tmp_path, "artist")
    p.commit_round(_round(p, 1.0), "fp", {"method": "PAPA", "steps": "ten"}, [])
    with pytest.raises(ProfileError) as err:
        _ = Profile.open(tmp_path, "artist").settings
    assert "'artist'" in str(err.value) and "'steps'" in str(err.value)
