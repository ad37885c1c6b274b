"""Recovery never deletes a committed round, and no field read from disk is trusted unchecked.

A manifest restored from an older backup, a hand-edited manifest (`round: -1`, `1.7`, `null`,
`"x"`), a user's copy `rounds/r0001.bak`, a pending file with wrong-typed metadata, NaN settings:
each is either placed (rounds above the manifest move to archive/ with a reason file) or refused
with an error naming the file and the field, and nothing on disk changes.
"""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import save_file

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import REASON_FILE, Profile, _tensors_sha256
from tests.reliability.store_crash_driver import commit_labelled_round, next_round


def _make(tmp_path, rounds: int) -> Profile:
    p = Profile.open(tmp_path, "artist")
    for r in range(1, rounds + 1):
        commit_labelled_round(p, f"req{r}", r)
    return p


def _files(p: Profile) -> dict[str, bytes | None]:
    """Every file's bytes and every folder, by path inside the profile."""
    return {
        str(f.relative_to(p.dir)): (f.read_bytes() if f.is_file() else None)
        for f in sorted(p.dir.rglob("*"))
    }


def _round_bytes(d) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(d.iterdir())}


def test_restoring_an_older_manifest_archives_the_newer_rounds_and_deletes_nothing(tmp_path):
    p = _make(tmp_path, 3)
    backup = (p.dir / "manifest.json").read_bytes()  # the artist's copy at round 3
    for _ in (4, 5):
        state, consumed = next_round(p)
        p.commit_round(state, "fp", {"method": "PAPA"}, consumed)
    newer = {r: _round_bytes(p.round_dir(r)) for r in (4, 5)}
    (p.dir / "manifest.json").write_bytes(b'{"format": "comfy-papa-pro')  # truncated
    before = _files(p)
    with pytest.raises(ProfileError) as err:
        Profile.open(tmp_path, "artist", create=False)
    msg = str(err.value)
    assert "manifest.json" in msg and "last complete round on disk is 5" in msg, msg
    assert "never deleted" in msg, msg  # the advice is safe to follow
    assert _files(p) == before

    (p.dir / "manifest.json").write_bytes(backup)  # follow the advice
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == 3
    assert sorted(d.name for d in (q.dir / "rounds").iterdir()) == ["r0001", "r0002", "r0003"]
    (archived,) = (q.dir / "archive").iterdir()
    assert archived.name.startswith("recovered-") and "above-r0003" in archived.name
    assert "restored from an older backup" in (archived / REASON_FILE).read_text()
    for r in (4, 5):
        assert _round_bytes(archived / f"r{r:04d}") == newer[r], "archived byte for byte"
    state, consumed = next_round(q)  # a new round 4 trains on, the old one stays archived
    q.commit_round(state, "fp", {"method": "PAPA"}, consumed)
    assert Profile.open(tmp_path, "artist").round == 4
    assert _round_bytes(archived / "r0004") == newer[4]


@pytest.mark.parametrize(
    "field, value",
    [
        ("round", -1),
        ("round", 1.7),
        ("round", None),
        ("round", "x"),
        ("round", True),
        ("round", "2"),
        ("consumed_requests", 5),
        ("consumed_requests", ["../x"]),
        ("settings", [1, 2]),
        ("settings", {"c_anchor": math.nan}),
        ("rounds", "x"),
        ("rounds", [{"round": "1"}]),
        ("label_counts", {"like": -3}),
        ("rollback_archive", "../../elsewhere"),
        ("node_requests", {"reset": "yes"}),
        ("base_fingerprint", 5),
        ("updated", "yesterday"),
        ("name", None),
    ],
)
def test_a_wrong_typed_manifest_field_is_named_and_nothing_changes(tmp_path, field, value):
    p = _make(tmp_path, 3)
    manifest = json.loads((p.dir / "manifest.json").read_text())
    manifest[field] = value
    (p.dir / "manifest.json").write_text(json.dumps(manifest))  # NaN written as NaN
    before = _files(p)
    with pytest.raises(ProfileError) as err:
        Profile.open(tmp_path, "artist", create=False)
    msg = str(err.value)
    assert "manifest.json" in msg and f'"{field}' in msg, msg
    assert "Nothing was changed" in msg and "last complete round on disk is 3" in msg, msg
    assert _files(p) == before, "nothing deleted, moved or rewritten"


def test_a_manifest_changed_under_an_open_profile_is_checked_before_any_write(tmp_path):
    p = _make(tmp_path, 2)
    manifest = json.loads((p.dir / "manifest.json").read_text())
    (p.dir / "manifest.json").write_text(json.dumps({**manifest, "round": -1}))
    before = _files(p)
    with pytest.raises(ProfileError, match="manifest.json"):
        p.rollback(1)
    with pytest.raises(ProfileError, match="manifest.json"):
        p.record_feedback("req9", 3, ["a"], [1.0], torch.zeros(1, 4, 2, 2))
    assert _files(p) == before


def test_a_copy_of_a_round_folder_is_left_alone_and_the_profile_trains_on(tmp_path):
    p = _make(tmp_path, 1)
    shutil.copytree(p.round_dir(1), p.dir / "rounds" / "r0001.bak")
    copy = _round_bytes(p.dir / "rounds" / "r0001.bak")
    q = Profile.open(tmp_path, "artist", create=False)
    q.record_feedback("req9", 2, ["a", "b"], [1.0, 1.0], torch.zeros(2, 4, 2, 2))
    state, consumed = next_round(q)
    q.commit_round(state, "fp", {}, consumed)
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == 2 and q.pending() == []
    assert _round_bytes(q.dir / "rounds" / "r0001.bak") == copy


def test_an_uncommitted_round_left_by_a_crash_is_archived_not_deleted(tmp_path):
    p = _make(tmp_path, 1)
    stray = p.dir / "rounds" / "r0002"
    shutil.copytree(p.round_dir(1), stray)
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == 1 and not stray.exists()
    (kept,) = (q.dir / "archive").glob("recovered-*/r0002")
    assert (kept.parent / REASON_FILE).exists()


def _pending_file(p: Profile, rid: str, meta: dict, n_labels: int = 2, n_latents: int = 2):
    tensors = {
        "latents": torch.zeros(n_latents, 4, 2, 2),
        "labels": torch.ones(n_labels),
    }
    meta = {"request_id": rid, "round": "1", "ids": json.dumps(["a", "b"]), **meta}
    meta["sha256"] = _tensors_sha256(tensors)  # a matching checksum: only the types are wrong
    (p.dir / "pending").mkdir(exist_ok=True)
    save_file(tensors, str(p.dir / "pending" / f"{rid}.safetensors"), metadata=meta)


@pytest.mark.parametrize(
    "meta, n_labels, needle",
    [
        ({"round": "x"}, 2, '"round"'),
        ({"round": "-1"}, 2, '"round"'),
        ({"ids": "[1, 2]"}, 2, '"ids"'),
        ({"ids": "{"}, 2, "not valid JSON"),
        ({"extra": "[]"}, 2, '"extra"'),
        ({"request_id": "other"}, 2, "file's name"),
        ({}, 3, "2 ids, 3 labels and 2 latents"),
    ],
)
def test_wrong_typed_pending_metadata_is_named_and_nothing_changes(
    tmp_path, meta, n_labels, needle
):
    p = _make(tmp_path, 1)
    _pending_file(p, "reqbad", meta, n_labels=n_labels)
    before = _files(p)
    q = Profile.open(tmp_path, "artist", create=False)  # recovery leaves it alone
    with pytest.raises(ProfileError) as err:
        q.pending()
    msg = str(err.value)
    assert "reqbad.safetensors" in msg and needle in msg and "move the file away" in msg, msg
    assert _files(p) == before


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"request_id": "r", "candidate": "a", "label": "like"}, '"label"'),
        ({"request_id": 5, "candidate": "a", "label": 1.0}, '"request_id"'),
        ({"request_id": "r", "candidate": "a", "label": 1.0, "round": -2}, '"round"'),
        ([1, 2], "(line)"),
    ],
)
def test_wrong_typed_history_line_is_named(tmp_path, row, needle):
    p = _make(tmp_path, 1)
    with open(p.dir / "history.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    before = _files(p)
    with pytest.raises(ProfileError) as err:
        Profile.open(tmp_path, "artist", create=False).history()
    msg = str(err.value)
    assert "history.jsonl line 3" in msg and needle in msg, msg
    assert _files(p) == before


@pytest.mark.parametrize(
    "change, needle",
    [({"round": 7}, '"round"'), ({"sha256": {"adapter": 5}}, '"sha256'), ({"stats": []}, "stats")],
)
def test_wrong_typed_round_json_is_named_with_the_round_to_roll_back_to(tmp_path, change, needle):
    p = _make(tmp_path, 2)
    path = p.round_dir(2) / "round.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ProfileError) as err:
        Profile.open(tmp_path, "artist", create=False).load_round()
    msg = str(err.value)
    assert "round.json" in msg and needle in msg and "roll back to round 1" in msg, msg


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_settings_are_refused_before_the_round_commits(tmp_path, bad):
    p = _make(tmp_path, 1)
    state, consumed = next_round(p)
    before = _files(p)
    with pytest.raises(ProfileError) as err:
        p.commit_round(state, "fp", {"method": "PAPA", "c_anchor": bad}, consumed)
    assert "finite" in str(err.value) and "stays at round 1" in str(err.value)
    assert _files(p) == before
    assert Profile.open(tmp_path, "artist").round == 1


def test_non_finite_statistics_are_stored_as_null(tmp_path):
    p = _make(tmp_path, 1)
    state, consumed = next_round(p)
    p.commit_round(state, "fp", {}, consumed, {"loss_first": math.nan, "drift": 0.5})
    text = (p.dir / "manifest.json").read_text()
    assert "NaN" not in text
    assert Profile.open(tmp_path, "artist").manifest["rounds"][-1]["stats"] == {
        "loss_first": None,
        "drift": 0.5,
    }


def test_a_profile_with_nan_statistics_from_before_still_commits_and_rolls_back(tmp_path):
    """Older versions wrote NaN statistics into manifest.json and round.json: the profile opens,
    commits (dropping an older round's optimizer rewrites its round.json) and rolls back, and
    every file it writes is plain JSON again."""
    p = _make(tmp_path, 2)
    path = p.dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["rounds"][0]["stats"] = {"drift": math.nan, "loss_first": 0.5}
    path.write_text(json.dumps(manifest))
    info_path = p.round_dir(2) / "round.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "stats": {"x": math.nan}}))
    q = Profile.open(tmp_path, "artist", create=False)
    state, consumed = next_round(q)
    q.commit_round(state, "fp", {"method": "PAPA"}, consumed)
    assert json.loads(info_path.read_text())["optimizer"] == "dropped"
    assert "NaN" not in info_path.read_text() and "NaN" not in path.read_text()
    q.rollback(1)
    q.set_node_requests({"reset": False, "rollback": 1})
    assert "NaN" not in path.read_text()
    assert Profile.open(tmp_path, "artist").manifest["rounds"][0]["stats"]["drift"] is None
