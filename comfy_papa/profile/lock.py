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

import errno
import logging
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


HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK}


def _try_lock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: the file system has no locks (some
    network shares), so only this process's threads are kept apart."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as e:
        return False if e.errno in HELD else None
    return True


def _unlock(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    except OSError:
        pass  # never locked (no locks on this file system); closing the file releases it anyway


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
        self._warned = False

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
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow, 0o644)
        except OSError as e:
            try:  # a read-only profile folder: an existing lock file still locks
                fd = os.open(path, os.O_RDONLY | nofollow)
            except OSError:
                raise ProfileError(
                    f"Profile {name!r}: cannot open its lock file {path} ({e}). Nothing was "
                    "changed; check that the folder is writable and that the lock file is a "
                    "plain file."
                ) from e
        try:
            while True:
                got = _try_lock(fd)
                if got is None and not self._warned:
                    self._warned = True
                    logging.warning(
                        "comfy-papa: %s has no file locks; profile %r is protected from this "
                        "process's other threads only, not from other processes.",
                        path,
                        name,
                    )
                if got is not False:
                    break
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
