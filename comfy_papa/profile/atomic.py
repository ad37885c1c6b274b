"""Crash-safe file writes: temp file in the same folder, fsync, rename, fsync the folder."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from .faults import point

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` then move tmp over `path`; a crash leaves the old file or the new one.

    On any error the temp file is removed and the error propagates: nothing half-written remains.
    """
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        point(f"write:{path.name}:begin")
        write(tmp)
        point(f"write:{path.name}:written")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        point(f"write:{path.name}:synced")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    point(f"write:{path.name}:renamed")
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: Path, obj) -> None:
    """Plain JSON only: NaN or infinity raise ValueError before anything is written."""
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def append_line_durable(path: Path, line: str) -> None:
    """Append one line and fsync before returning: once acknowledged, it survives a crash."""
    append_lines_durable(path, [line])


def append_lines_durable(path: Path, lines: list[str]) -> None:
    """Append lines and fsync; on any error (a full disk: short write) cut the file back to its
    old size, so no torn line is left in the middle of it."""
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
    point(f"append:{Path(path).name}:begin")
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            point(f"append:{Path(path).name}:written")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
