"""Where profiles live in a ComfyUI install, and the PAPA_PROFILE socket value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import folder_paths

from ..profile.store import Profile

FOLDER = "papa_profiles"


def profiles_root() -> Path:
    """`models/papa_profiles` (redirectable through extra_model_paths.yaml as `papa_profiles`)."""
    if FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(FOLDER, str(Path(folder_paths.models_dir) / FOLDER))
    root = Path(folder_paths.get_folder_paths(FOLDER)[0])
    root.mkdir(parents=True, exist_ok=True)
    return root


def open_profile(name: str, create: bool = True) -> Profile:
    return Profile.open(profiles_root(), name, create=create)


def list_profiles() -> list[str]:
    root = profiles_root()
    return sorted(d.name for d in root.iterdir() if (d / "manifest.json").exists())


@dataclass(frozen=True)
class ProfileRef:
    """What travels on a PAPA_PROFILE socket: the name and the version it was opened at."""

    name: str
    round: int
    version: str

    def open(self) -> Profile:
        return open_profile(self.name, create=False)
