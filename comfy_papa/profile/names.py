"""Validation of names that become paths: profile names and request ids."""

from __future__ import annotations

import re

_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FILE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_RESERVED = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(10)}


class ProfileError(ValueError):
    """A profile problem the artist can act on; the message says what to do."""


def validate_profile_name(name: object) -> str:
    """Return the name if it is a safe folder name, else raise ProfileError saying why.

    ASCII letters, digits, '_', '-', '.', 1-64 characters, starting with a letter or digit: no
    path separators, no '..', no NUL, no unicode look-alikes, no Windows device names.
    """
    if not isinstance(name, str):
        raise ProfileError(f"Profile name must be text, got {type(name).__name__}.")
    if not _PROFILE.fullmatch(name) or ".." in name or name.endswith("."):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise ProfileError(
            f"Invalid profile name {shown!r}: use 1-64 ASCII letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (no slashes, no '..')."
        )
    if name.split(".")[0].lower() in _RESERVED:
        raise ProfileError(f"Profile name {name!r} is reserved on Windows; choose another.")
    return name


def validate_file_stem(stem: object, max_len: int = 64) -> str:
    """A file name (without extension) for models/loras: the same rules as profile names, up to
    `max_len` characters (a composed export name, prefix + profile + round + id, takes more)."""
    long_ok = isinstance(stem, str) and 64 < len(stem) <= max_len and _FILE_STEM.fullmatch(stem)
    if long_ok and ".." not in stem and not stem.endswith("."):
        return stem
    try:
        return validate_profile_name(stem)
    except ProfileError as e:
        raise ProfileError(str(e).replace("profile name", "file name", 1)) from None


def validate_token(value: object, what: str = "request id") -> str:
    """Ids that name files (request ids): 1-64 of [A-Za-z0-9_-]."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ProfileError(f"Invalid {what} {str(value)[:40]!r}: expected 1-64 of A-Z a-z 0-9 _ -.")
    return value
