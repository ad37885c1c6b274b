"""Storage grows linearly: the replay is stored once (each round keeps only the rows it added)
and the optimizer state is kept for the newest round only; every round still loads whole and can
be rolled back to. Profiles written before this (a full replay and an optimizer state in every
round) keep loading, and shrink at their next commit."""

import json

import torch
from safetensors.torch import save_file

from comfy_papa.profile.store import Profile, _sha256
from tests.reliability.store_crash_driver import commit_labelled_round


def _grow(p: Profile, rounds: int, start: int = 0) -> dict[int, list[str]]:
    """Commit `rounds` rounds of 2 labels each; the replay ids of each round as committed."""
    seen = {}
    for i in range(start, start + rounds):
        state = commit_labelled_round(p, f"req{i}", i)
        seen[p.round] = list(state.replay.ids)
    return seen


def _sizes(p: Profile, r: int) -> dict[str, int]:
    return {f.name: f.stat().st_size for f in p.round_dir(r).iterdir()}


def test_every_round_loads_whole_from_its_replay_rows_and_only_the_newest_keeps_its_optimizer(
    tmp_path, monkeypatch
):
    # adapter retention (test_store_retention.py) would thin rounds 1-2: every adapter stays here
    monkeypatch.setattr("comfy_papa.profile.store.RETAIN_FULL", 1000)
    p = Profile.open(tmp_path, "artist")
    seen = _grow(p, 12)
    q = Profile.open(tmp_path, "artist", create=False)
    for r, ids in seen.items():
        state = q.load_round(r)
        assert state.replay.ids == ids and len(state.replay) == 2 * r
        assert torch.equal(state.replay.latents[-1], torch.full((4, 2, 2), float(r - 1)))
        assert bool(state.optimizer) == (r == 12), r
        info = json.loads((q.round_dir(r) / "round.json").read_text())
        assert info["replay"]["rows"] == 2 * r
        assert info["replay"].get("from") == (r - 1 if r > 1 else None)
        assert (info.get("optimizer") == "dropped") == (r < 12)
    replay_sizes = {_sizes(q, r)["replay.safetensors"] for r in range(2, 13)}
    assert max(replay_sizes) - min(replay_sizes) < 64, replay_sizes  # 2 rows each, not 2r


def test_rolling_back_to_a_round_without_optimizer_state_trains_on(tmp_path):
    p = Profile.open(tmp_path, "artist")
    seen = _grow(p, 5)
    p.rollback(2)
    state = p.load_round()
    assert state.optimizer == {} and state.replay.ids == seen[2]
    seen.update(_grow(p, 2, start=50))  # rounds 3 and 4 again, on top of round 2
    q = Profile.open(tmp_path, "artist", create=False)
    assert q.round == 4 and q.load_round().replay.ids == seen[4]
    assert seen[4][:4] == seen[2]
    assert [r for r in range(1, 5) if (q.round_dir(r) / "optimizer.safetensors").exists()] == [4]
    archived = sorted((q.dir / "archive").rglob("round.json"))
    assert [f.parent.name for f in archived] == ["r0003", "r0004", "r0005"], archived


def _make_old_format(p: Profile, seen: dict[int, list[str]]) -> None:
    """Rewrite every round as the store wrote it before: a whole replay and an optimizer state
    in every round, round.json without "replay" or "optimizer"."""
    for r in seen:
        state = p.load_round(r)
        d = p.round_dir(r)
        tensors, meta = state.replay.to_safetensors()
        save_file(tensors, str(d / "replay.safetensors"), metadata=meta)
        save_file(
            {"m.lora_up.weight::step": torch.tensor(float(r))}, str(d / "optimizer.safetensors")
        )
        info = json.loads((d / "round.json").read_text())
        info.pop("replay", None)
        info.pop("optimizer", None)
        info["sha256"] = {
            k: _sha256(d / f"{k}.safetensors") for k in ("adapter", "optimizer", "replay", "conds")
        }
        (d / "round.json").write_text(json.dumps(info))


def test_a_profile_written_before_keeps_loading_and_shrinks_at_its_next_commit(tmp_path):
    p = Profile.open(tmp_path, "artist")
    seen = _grow(p, 4)
    _make_old_format(p, seen)
    old = Profile.open(tmp_path, "artist", create=False)  # opening changes nothing
    for r in seen:
        assert old.load_round(r).replay.ids == seen[r]
        assert (old.round_dir(r) / "optimizer.safetensors").exists()
    seen.update(_grow(old, 2, start=10))  # the next commits migrate it
    q = Profile.open(tmp_path, "artist", create=False)
    for r, ids in seen.items():
        assert q.load_round(r).replay.ids == ids, r
    assert [r for r in seen if (q.round_dir(r) / "optimizer.safetensors").exists()] == [6]
    info5 = json.loads((q.round_dir(5) / "round.json").read_text())
    assert info5["replay"] == {"rows": 10, "from": 4}, "round 5 extends round 4's whole replay"
