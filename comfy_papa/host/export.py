"""Export a profile's adapter as a plain LoRA safetensors file with provenance metadata."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..profile.atomic import atomic_write
from ..profile.names import ProfileError, validate_file_stem
from ..profile.store import Profile

MAX_STEM = 200


def lora_metadata(profile: Profile, adapter_sha256: str) -> dict[str, str]:
    m = profile.manifest
    settings = profile.settings
    return {
        "comfy_papa.format": "comfy-papa-lora/1",
        "comfy_papa.profile": profile.name,
        "comfy_papa.round": str(profile.round),
        "comfy_papa.adapter_sha256": adapter_sha256,
        "comfy_papa.base_fingerprint": str(m.get("base_fingerprint")),
        "comfy_papa.label_counts": json.dumps(m.get("label_counts", {})),
        "comfy_papa.settings": json.dumps(settings.as_dict(), sort_keys=True),
        "comfy_papa.method": settings.method,
        "ss_network_dim": str(settings.rank),
        "ss_network_alpha": str(settings.alpha),
    }


def export_stem(prefix: str, profile: Profile, adapter_sha256: str) -> str:
    """`<prefix><profile>_r<round>_<8 hex of the adapter's checksum>`: the round number alone
    repeats after a reset or rollback; the checksum tells the adapters apart."""
    return f"{prefix}{profile.name}_r{profile.round:04d}_{adapter_sha256[:8]}"


def _exported_sha256(path: Path) -> str | None:
    """The adapter checksum an existing export of ours carries (None: not one of ours)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("comfy_papa.adapter_sha256")
    except (SafetensorError, OSError):
        return None


def export_lora(
    profile: Profile, loras_dir: str | Path, prefix: str, overwrite: bool = False
) -> str:
    """Write the current round's adapter to `<loras_dir>/<export_stem>.safetensors` atomically;
    returns the file name. An existing file of that name is kept unless it is this very export
    (then nothing is written) or `overwrite` is set."""
    validate_file_stem(prefix.rstrip("_-.") or "x")
    if profile.round == 0:
        raise ProfileError(
            f"Profile {profile.name!r} has no trained round yet; run PAPA Fine-tune first."
        )
    state = profile.load_round()
    sha = state.info["sha256"]["adapter"]
    stem = validate_file_stem(export_stem(prefix, profile, sha), MAX_STEM)
    path = Path(loras_dir) / f"{stem}.safetensors"
    if path.exists() or path.is_symlink():
        if not path.is_symlink() and _exported_sha256(path) == sha:
            return path.name  # the same round exported again
        if not overwrite:
            raise ProfileError(
                f"{path} exists already and is not this export of round {profile.round} of "
                f"profile {profile.name!r}. Nothing was written; choose another filename prefix, "
                "or switch on overwrite to replace it."
            )
        if path.is_symlink() or not path.is_file():
            raise ProfileError(
                f"{path} is a link or a folder; nothing was written. Move it away or choose "
                "another filename prefix."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.adapter.items()}
    meta = lora_metadata(profile, sha)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path.name
