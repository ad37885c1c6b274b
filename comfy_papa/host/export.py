"""Export a profile's adapter as a plain LoRA safetensors file with provenance metadata."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from ..profile.atomic import atomic_write
from ..profile.names import ProfileError, validate_file_stem
from ..profile.store import Profile


def lora_metadata(profile: Profile) -> dict[str, str]:
    m = profile.manifest
    settings = m.get("settings", {})
    return {
        "comfy_papa.format": "comfy-papa-lora/1",
        "comfy_papa.profile": profile.name,
        "comfy_papa.round": str(profile.round),
        "comfy_papa.base_fingerprint": str(m.get("base_fingerprint")),
        "comfy_papa.label_counts": json.dumps(m.get("label_counts", {})),
        "comfy_papa.settings": json.dumps(settings, sort_keys=True),
        "comfy_papa.method": str(settings.get("method", "PAPA")),
        "ss_network_dim": str(settings.get("rank", "")),
        "ss_network_alpha": str(settings.get("alpha", "")),
    }


def export_lora(profile: Profile, loras_dir: str | Path, stem: str) -> str:
    """Write `<loras_dir>/<stem>.safetensors` atomically; returns the file name."""
    validate_file_stem(stem)
    if profile.round == 0:
        raise ProfileError(
            f"Profile {profile.name!r} has no trained round yet; run PAPA Fine-tune first."
        )
    state = profile.load_round()
    path = Path(loras_dir) / f"{stem}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.adapter.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=lora_metadata(profile)))
    return path.name
