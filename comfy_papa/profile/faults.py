"""Fault injection at named points of the profile writes: a TEST HOOK, off unless set.

The store calls `point("<name>")` at every step of a write (temp written, fsynced, renamed, ...).
Nothing happens unless the environment asks for it:

- `COMFY_PAPA_FAULT=<pattern>`: at the first point whose name matches the fnmatch pattern
  (e.g. `commit:round-renamed`, `write:manifest.json:*`), act as `COMFY_PAPA_FAULT_ACTION` says:
  `kill` (default: SIGKILL this process, as a crash or power cut would), `enospc` (raise
  OSError(ENOSPC), a full disk) or `eio` (raise OSError(EIO)).
- `COMFY_PAPA_FAULT_SKIP=<n>`: let the first n matching points pass (e.g. the second commit).
- `COMFY_PAPA_FAULT_TRACE=<file>`: append every point reached to that file (one per line), so a
  test can enumerate all write points and then crash at each in turn.

Point names: `write:<file>:{begin,written,synced,renamed}`, `append:<file>:{begin,written}`,
`feedback:*`, `commit:*`, `rollback:*` (see the calls in atomic.py and store.py).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import signal

_hits: dict[str, int] = {}


def point(name: str) -> None:
    trace = os.environ.get("COMFY_PAPA_FAULT_TRACE")
    pattern = os.environ.get("COMFY_PAPA_FAULT")
    if trace:
        with open(trace, "a") as f:
            f.write(name + "\n")
    if not pattern or not fnmatch.fnmatchcase(name, pattern):
        return
    _hits[pattern] = _hits.get(pattern, 0) + 1
    if _hits[pattern] <= int(os.environ.get("COMFY_PAPA_FAULT_SKIP", "0")):
        return
    action = os.environ.get("COMFY_PAPA_FAULT_ACTION", "kill")
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected at {name})")
    if action == "eio":
        raise OSError(errno.EIO, os.strerror(errno.EIO) + f" (injected at {name})")
    os.kill(os.getpid(), signal.SIGKILL)
