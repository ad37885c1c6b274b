"""PAPA Export LoRA never replaces a file it did not write for this very round unless asked,
gives a round after a reset a new name, and exports profiles with names of any valid length."""

from __future__ import annotations

import json

import pytest
from host.papa_graphs import labelled_round
from safetensors import safe_open
from safetensors.torch import load_file

from comfy_papa.host.export import export_stem
from comfy_papa.profile.store import Profile
from harness.graph import Graph, run

FT = dict(steps=1, batch_size=2, timesteps_per_sample=1)
pytestmark = pytest.mark.slow


def _export(server, profile: str, reset: bool = False, **inputs):
    g = Graph()
    prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=reset)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_", **inputs)
    return run(server.url, g, timeout=120)


def _lora(result) -> str:
    assert result.ok, result.error()
    return json.loads(result.outputs["export"]["text"][0])["lora"]


def _content(path) -> tuple[dict, dict]:
    """Tensors and metadata (the header's key order is not stable between writes)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return {k: v.tolist() for k, v in load_file(str(path)).items()}, meta


@pytest.mark.parametrize("length", [59, 64])
def test_long_profile_names_export(comfy, checkpoint_name, length):
    name = f"long{length}-" + "x" * (length - 7)
    assert len(name) == length
    r = run(comfy.url, labelled_round(checkpoint_name, name, "+ -", seed=length, **FT))
    assert r.ok, r.error()
    lora = _lora(_export(comfy, name))
    assert lora.startswith(f"papa_{name}_r0001_") and lora.endswith(".safetensors"), lora
    assert (comfy.base / "models" / "loras" / lora).is_file()


def test_export_never_replaces_another_file_unless_asked_and_is_unique_across_resets(
    comfy, checkpoint_name
):
    name = "export-safety"
    loras = comfy.base / "models" / "loras"
    r = run(comfy.url, labelled_round(checkpoint_name, name, "+ -", seed=1, **FT))
    assert r.ok, r.error()
    first = _lora(_export(comfy, name))
    first_bytes = (loras / first).read_bytes()
    first_content = _content(loras / first)
    assert _lora(_export(comfy, name, overwrite=False)) == first, "the same export again"
    assert (loras / first).read_bytes() == first_bytes

    # A file of the artist's with the name the export would take: kept, unless asked.
    (loras / first).write_bytes(b"the artist's own LoRA")
    r = _export(comfy, name)
    assert not r.ok
    msg = r.error()["exception_message"]
    assert first in msg and "exists already" in msg and "overwrite" in msg, msg
    assert (loras / first).read_bytes() == b"the artist's own LoRA"
    assert _lora(_export(comfy, name, overwrite=True)) == first
    assert _content(loras / first) == first_content
    first_bytes = (loras / first).read_bytes()

    # Reset and train round 1 again, on other labels: a new name; the old export is untouched.
    r = _export(comfy, name, reset=True)  # the reset happens; there is nothing to export yet
    assert "no trained round" in r.error()["exception_message"], r.error()
    r = run(comfy.url, labelled_round(checkpoint_name, name, "- +", seed=2, **FT))
    assert r.ok, r.error()
    second = _lora(_export(comfy, name))
    assert second != first and second.startswith(f"papa_{name}_r0001_"), (first, second)
    assert (loras / first).read_bytes() == first_bytes
    p = Profile.open(comfy.base / "models" / "papa_profiles", name, create=False)
    sha = json.loads((p.round_dir(1) / "round.json").read_text())["sha256"]["adapter"]
    assert second == export_stem("papa_", p, sha) + ".safetensors"
