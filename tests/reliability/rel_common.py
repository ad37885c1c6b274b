"""Helpers shared by the reliability tests that drive a real server."""

from __future__ import annotations

from pathlib import Path

# ComfyUI's own writes, not the pack's: its log, database/user settings, temp previews.
IGNORED_TOP = {"comfyui.log", "user", "temp"}


def snapshot(base: Path) -> dict[str, int]:
    """path -> size of every file and folder under a ComfyUI base directory, minus ComfyUI's own
    log/user/temp. Links (the models and the pack) are listed, never followed."""
    out = {}
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if rel.parts[0] in IGNORED_TOP or "comfy-papa" in rel.parts[:2]:
            continue
        out[rel.as_posix()] = -1 if p.is_dir() or p.is_symlink() else p.stat().st_size
    return out


def changed_outside(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    keys = set(before) | set(after)
    diff = [k for k in keys if before.get(k) != after.get(k)]

    def ok(k: str) -> bool:  # inside an allowed folder, or one of its parent folders
        return any(k == a or k.startswith(a + "/") or a.startswith(k + "/") for a in allowed)

    return sorted(k for k in diff if not ok(k))
