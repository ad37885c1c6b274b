"""One writer at a time per profile folder, across the threads of a process and across processes.

Two ComfyUI servers (one per GPU) and a diffusers script can share one `papa_profiles` folder.
Every write to a profile and the crash recovery that runs when it is opened hold this lock, so
that recovery never takes another process's live commit for a crash's leftovers and two commits
never race. Threads of one process wait on an RLock (re-entrant: a locked method may call
another); processes on an advisory lock of `<profile>/.lock` (`fcntl.flock`, or `msvcrt.locking`
on Windows), taken by the outermost holder of the process. The kernel drops a dead process's lock,
so a crash never leaves a profile locked. The lock file stays empty: reading a profile writes
nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .names import ProfileError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".lock"
TIMEOUT_S = float(os.environ.get("COMFY_PAPA_LOCK_TIMEOUT", "120"))
POLL_S = 0.02


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _holder(fd: int) -> str:
    """' (pid N)' of the process holding the lock on fd's file, where the system says (Linux's
    /proc/locks); '' elsewhere."""
    try:
        inode = os.fstat(fd).st_ino
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                if "->" not in parts and len(parts) > 5 and parts[5].endswith(f":{inode}"):
                    return f" (pid {parts[4]})"
    except (OSError, IndexError):
        pass
    return ""


class ProfileLock:
    """The lock of one profile folder; `with lock.hold(name):` around every write or recovery."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def hold(self, name: str, timeout_s: float | None = None) -> Iterator[None]:
        timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        if not self._thread.acquire(timeout=timeout_s):
            raise self._busy(name, "another thread of this process", timeout_s)
        try:
            if self._depth == 0:
                self._fd = self._acquire_file(name, deadline, timeout_s)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fd, self._fd = self._fd, None
                    try:
                        _unlock(fd)
                    finally:
                        os.close(fd)
        finally:
            self._thread.release()

    def _acquire_file(self, name: str, deadline: float, timeout_s: float) -> int:
        path = self.folder / LOCK_FILE
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            raise ProfileError(
                f"Profile {name!r}: cannot open its lock file {path} ({e}). Nothing was changed; "
                "check that the folder is writable and that the lock file is a plain file."
            ) from e
        try:
            while not _try_lock(fd):
                if time.monotonic() > deadline:
                    raise self._busy(name, f"another process{_holder(fd)}", timeout_s)
                time.sleep(POLL_S)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _busy(self, name: str, who: str, timeout_s: float) -> ProfileError:
        return ProfileError(
            f"Profile {name!r} is busy: {who} has been writing it for more than {timeout_s:.0f} "
            "s. Nothing was changed; try again when that run has finished (a stuck process can "
            "be stopped; its lock goes with it)."
        )


_locks: dict[Path, ProfileLock] = {}
_locks_guard = threading.Lock()


def profile_lock(folder: Path) -> ProfileLock:
    """The one lock object of a profile folder in this process."""
    key = Path(os.path.abspath(folder))
    with _locks_guard:
        return _locks.setdefault(key, ProfileLock(key))
