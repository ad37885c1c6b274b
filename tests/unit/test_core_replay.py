import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from comfy_papa.core.replay import GROUP_KEY, CondGroups, ReplayBuffer


def _filled() -> ReplayBuffer:
    buffer = ReplayBuffer()
    g = torch.Generator().manual_seed(0)
    buffer.add(
        torch.randn(3, 4, 2, 2, generator=g),
        torch.tensor([1.0, -1.0, 0.0]),
        torch.zeros(3, dtype=torch.long),
        ["a", "b", "c"],
        cond={"text": torch.randn(3, 5, 8, generator=g)},
    )
    buffer.add(
        torch.randn(2, 4, 2, 2, generator=g),
        torch.tensor([0.5, -1.0]),
        torch.ones(2, dtype=torch.long),
        ["d", "e"],
        cond={"text": torch.randn(2, 5, 8, generator=g)},
    )
    return buffer


def test_add_accumulates_and_counts_labels():
    buffer = _filled()
    assert len(buffer) == 5
    assert buffer.latents.shape == (5, 4, 2, 2)
    assert buffer.label_counts() == {"like": 2, "dislike": 2, "skip": 1}
    assert buffer.rounds.tolist() == [0, 0, 0, 1, 1]


def test_safetensors_round_trip_is_exact(tmp_path):
    buffer = _filled()
    tensors, metadata = buffer.to_safetensors()
    path = tmp_path / "replay.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    with safe_open(str(path), "pt") as f:
        loaded_metadata = f.metadata()
    loaded = ReplayBuffer.from_safetensors(load_file(str(path)), loaded_metadata)

    assert loaded.ids == buffer.ids
    assert torch.equal(loaded.latents, buffer.latents)
    assert torch.equal(loaded.labels, buffer.labels)
    assert torch.equal(loaded.rounds, buffer.rounds)
    assert loaded.cond.keys() == {"text"} and torch.equal(loaded.cond["text"], buffer.cond["text"])


def test_round_trip_of_unconditional_and_empty_buffers(tmp_path):
    empty_tensors, empty_meta = ReplayBuffer().to_safetensors()
    assert len(ReplayBuffer.from_safetensors(empty_tensors, empty_meta)) == 0

    buffer = ReplayBuffer()
    buffer.add(
        torch.ones(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, dtype=torch.long), ["x", "y"]
    )
    path = tmp_path / "u.safetensors"
    tensors, metadata = buffer.to_safetensors()
    save_file(tensors, str(path), metadata=metadata)
    loaded = ReplayBuffer.from_safetensors(load_file(str(path)), metadata)
    assert loaded.cond == {} and torch.equal(loaded.latents, torch.ones(2, 3))


def test_duplicate_ids_are_refused_with_the_offending_id():
    buffer = _filled()
    with pytest.raises(ValueError, match="'b'"):
        buffer.add(
            torch.zeros(1, 4, 2, 2),
            torch.ones(1),
            torch.ones(1, dtype=torch.long),
            ["b"],
            cond={"text": torch.zeros(1, 5, 8)},
        )
    with pytest.raises(ValueError, match="'z'"):
        ReplayBuffer().add(
            torch.zeros(2, 3), torch.ones(2), torch.ones(2, dtype=torch.long), ["z", "z"]
        )
    assert len(buffer) == 5


def test_mismatched_latent_shape_and_cond_keys_are_refused():
    buffer = _filled()
    with pytest.raises(ValueError, match="latent shape"):
        buffer.add(
            torch.zeros(1, 4, 3, 3),
            torch.ones(1),
            torch.ones(1, dtype=torch.long),
            ["f"],
            cond={"text": torch.zeros(1, 5, 8)},
        )
    with pytest.raises(ValueError, match="conditioning keys"):
        buffer.add(torch.zeros(1, 4, 2, 2), torch.ones(1), torch.ones(1, dtype=torch.long), ["f"])
    with pytest.raises(ValueError, match="one label"):
        buffer.add(torch.zeros(2, 4, 2, 2), torch.ones(1), torch.ones(1, dtype=torch.long), ["f"])


def test_sample_excludes_skipped_and_draws_without_replacement():
    buffer = _filled()
    g = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(50):
        idx = buffer.sample(3, g)
        assert len(set(idx.tolist())) == 3
        seen.update(idx.tolist())
    assert seen == {0, 1, 3, 4}
    assert sorted(buffer.sample(64, g).tolist()) == [0, 1, 3, 4]


def test_sample_from_skip_only_buffer_explains_what_to_do():
    buffer = ReplayBuffer()
    buffer.add(torch.zeros(1, 2), torch.zeros(1), torch.zeros(1, dtype=torch.long), ["s"])
    with pytest.raises(ValueError, match="label at least one"):
        buffer.sample(4, torch.Generator())


def test_from_safetensors_rejects_foreign_files():
    with pytest.raises(ValueError, match="not a comfy-papa replay"):
        ReplayBuffer.from_safetensors({}, {"format": "something-else"})


def _cond(seed: int, pooled: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = {"cross_attn": torch.randn(1, 3, 4, generator=g)}
    if pooled:
        cond["opt.pooled_output"] = torch.randn(1, 4, generator=g)
    return cond


def test_cond_groups_store_under_the_old_flat_names_and_read_back():
    a, b = _cond(0), _cond(1, pooled=False)
    groups = CondGroups()
    assert [groups.index(a), groups.index(b), groups.index(_cond(0))] == [0, 1, 0]
    flat = groups.to_flat()
    # exactly the names conds.safetensors has always used: "g<group>.<name>"
    assert list(flat) == ["g0.cross_attn", "g0.opt.pooled_output", "g1.cross_attn"]
    assert torch.equal(flat["g0.opt.pooled_output"], a["opt.pooled_output"])
    back = CondGroups.from_flat(flat)
    assert [g for g, _ in back.items()] == [0, 1]
    assert back.to_flat().keys() == flat.keys()
    assert all(torch.equal(back.to_flat()[k], v) for k, v in flat.items())


def test_cond_groups_read_a_stored_file_and_number_new_groups_after_the_last(tmp_path):
    """A conds.safetensors as an older round wrote it (groups 0, 1 and 10: g1 and g10 apart)."""
    flat = {"g1.cross_attn": torch.ones(1, 2), "g0.cross_attn": torch.zeros(1, 2)}
    flat["g10.cross_attn"] = torch.full((1, 2), 10.0)
    save_file(flat, str(tmp_path / "conds.safetensors"))
    groups = CondGroups.from_flat(load_file(str(tmp_path / "conds.safetensors")))
    assert [g for g, _ in groups.items()] == [0, 1, 10]
    assert groups.index({"cross_attn": torch.ones(1, 2)}) == 1
    assert groups.index({"cross_attn": torch.ones(1, 3)}) == 11  # other shape: a new group
    assert "g11.cross_attn" in groups.to_flat()


def test_an_empty_conditioning_stores_nothing():
    groups = CondGroups()
    assert groups.index({}) == 0
    assert groups.to_flat() == {} and len(groups) == 0


def test_a_foreign_conds_name_is_refused():
    with pytest.raises(ValueError, match="g<group>.<name>"):
        CondGroups.from_flat({"cross_attn": torch.ones(1)})


def test_replay_groups_is_the_stored_group_column():
    buffer = ReplayBuffer()
    buffer.add(
        torch.zeros(2, 1),
        torch.ones(2),
        torch.zeros(2, dtype=torch.long),
        ["a", "b"],
        {GROUP_KEY: torch.tensor([0, 1])},
    )
    tensors, meta = buffer.to_safetensors()
    assert "cond.group" in tensors  # the replay file's name for it
    assert ReplayBuffer.from_safetensors(tensors, meta).groups.tolist() == [0, 1]
