"""Retention of older rounds' adapters (issue 15's disk goal): the newest RETAIN_FULL rounds
keep their adapter as trained, older ones keep it in fp16 every THIN_EVERY-th round and not at
all otherwise (round.json says so); labels, replay rows and conditioning are never thinned."""

import json

import pytest
import torch

from comfy_papa.profile.names import ProfileError
from comfy_papa.profile.store import FP16_FILE, RETAIN_FULL, THIN_EVERY, Profile
from tests.reliability.store_crash_driver import next_round
from tests.reliability.test_store_disk_growth import _grow


def _adapters(p: Profile, rounds) -> dict[int, dict[str, torch.Tensor]]:
    return {r: p.load_round(r).adapter for r in rounds}


def _snapshot(p: Profile) -> dict[str, bytes]:
    return {
        str(f.relative_to(p.dir)): f.read_bytes()
        for f in sorted(p.dir.rglob("*"))
        if f.is_file() and f.name != ".lock"
    }


def test_older_adapters_are_fp16_or_thinned_and_the_newest_load_exactly(tmp_path):
    p = Profile.open(tmp_path, "artist")
    n = 25
    before = {}
    for i in range(n):
        _grow(p, 1, start=i)
        before[p.round] = p.load_round().adapter  # as committed, before any retention
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == n
    for r in range(1, n + 1):
        d = q.round_dir(r)
        info = json.loads((d / "round.json").read_text())
        if r > n - RETAIN_FULL:  # the newest K: untouched, bitwise equal
            assert (d / "adapter.safetensors").exists() and "adapter" not in info
            got = q.load_round(r).adapter
            assert got.keys() == before[r].keys()
            for k in got:
                assert got[k].dtype == before[r][k].dtype
                assert torch.equal(got[k], before[r][k]), (r, k)
        elif r % THIN_EVERY == 0:  # kept in fp16 on disk, loaded in the training dtype
            assert info["adapter"] == "fp16" and not (d / "adapter.safetensors").exists()
            assert (d / FP16_FILE).exists()
            got = q.load_round(r).adapter
            for k in got:
                assert got[k].dtype == before[r][k].dtype
                assert torch.equal(got[k], before[r][k].half().to(before[r][k].dtype)), (r, k)
        else:  # thinned, recorded in round.json
            assert info["adapter"] == "thinned" and "adapter" not in info["sha256"]
            assert not (d / "adapter.safetensors").exists() and not (d / FP16_FILE).exists()
            with pytest.raises(ProfileError, match="thinned by the retention"):
                q.load_round(r)
        # labels and replay rows are complete in every round
        assert (d / "replay.safetensors").exists() and (d / "conds.safetensors").exists()
        assert info["replay"]["rows"] == 2 * r
        replay = q._load_replay(r, q._round_info(r))
        assert len(replay) == 2 * r and replay.ids == [
            f"req{i}:{c}" for i in range(r) for c in "ab"
        ]
    assert len(q.history()) == 2 * n
    assert len(q.load_round().replay) == 2 * n


def test_rollback_to_a_kept_old_round_trains_on_and_to_a_thinned_one_is_refused(tmp_path):
    p = Profile.open(tmp_path, "artist")
    n = 25
    _grow(p, n)
    kept = THIN_EVERY  # an old round kept in fp16
    thinned = THIN_EVERY + 1
    assert kept <= n - RETAIN_FULL and thinned <= n - RETAIN_FULL
    before = _snapshot(p)
    with pytest.raises(ProfileError) as e:
        p.rollback(thinned)
    msg = str(e.value)
    assert f"round {thinned}'s adapter was thinned" in msg and "Nothing was changed" in msg
    assert f"round {kept}" in msg and f"round {n - RETAIN_FULL + 1}" in msg, msg
    assert _snapshot(p) == before and p.round == n
    p.rollback(kept)
    state = p.load_round()
    assert state.round == kept and len(state.replay) == 2 * kept
    assert all(v.dtype == torch.float32 for v in state.adapter.values())
    _grow(p, 2, start=100)  # trains on from the fp16 round
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == kept + 2 and len(q.load_round().replay) == 2 * (kept + 2)


def test_an_interrupted_retention_step_is_finished_on_open(tmp_path, monkeypatch):
    p = Profile.open(tmp_path, "artist")
    _grow(p, RETAIN_FULL + THIN_EVERY - 1)  # round THIN_EVERY is the next to go fp16
    target = p.round_dir(THIN_EVERY)
    for step in ("fp16-written", "fp16"):

        class Crash(BaseException):
            pass

        def crash(name, step=step):
            if name == f"retain:{step}-{target.name}":
                raise Crash()

        q = Profile.open(tmp_path, "artist", create=False)
        monkeypatch.setattr("comfy_papa.profile.store.point", crash)
        q.record_feedback(f"x{step}", q.round + 1, ["a", "b"], [1.0, -1.0], torch.ones(2, 4, 2, 2))
        state, consumed = next_round(q)
        with pytest.raises(Crash):
            q.commit_round(state, "fp", {"method": "PAPA"}, consumed)
        monkeypatch.undo()
        r = Profile.open(tmp_path, "artist", create=False)  # recovery finishes the step
        info = json.loads((target / "round.json").read_text())
        files = {f.name for f in target.iterdir()}
        if step == "fp16-written":  # round.json not switched yet: the stray fp16 copy goes
            assert "adapter" not in info and FP16_FILE not in files
            assert "adapter.safetensors" in files
        else:
            assert info["adapter"] == "fp16" and "adapter.safetensors" not in files
        r.load_round(THIN_EVERY)  # loads either way
        r.rollback(r.round - 1)  # undo this try's round so the next try commits again


def test_a_wrong_adapter_field_in_round_json_is_refused_with_the_file_named(tmp_path):
    p = Profile.open(tmp_path, "artist")
    _grow(p, 2)
    path = p.round_dir(1) / "round.json"
    info = json.loads(path.read_text())
    for bad in ("half", 16, None):
        path.write_text(json.dumps({**info, "adapter": bad}))
        with pytest.raises(ProfileError, match=r"round\.json.*adapter"):
            p.load_round(1)
