"""Fault injection at named points of the profile writes: a TEST HOOK, off unless set.

The store calls `point("<name>")` at every step of a write (temp written, fsynced, renamed, ...),
and the feedback route at each step of an answer. Nothing happens unless the environment asks:

- `COMFY_PAPA_FAULT=<pattern>`: at the first point whose name matches the fnmatch pattern
  (e.g. `commit:round-renamed`, `write:manifest.json:*`), act as `COMFY_PAPA_FAULT_ACTION` says:
  `kill` (default: SIGKILL this process, as a crash or power cut would), `enospc` (raise
  OSError(ENOSPC), a full disk), `eio` (raise OSError(EIO)), `raise:<name>` (raise that built-in
  exception type, e.g. `raise:TypeError`: an unexpected bug) or `pause` (create
  `<COMFY_PAPA_FAULT_PAUSE>.reached`, then wait until the file `COMFY_PAPA_FAULT_PAUSE` exists:
  another process can act while this one stands at the point).
- `COMFY_PAPA_FAULT_SKIP=<n>`: let the first n matching points pass (e.g. the second commit).
- `COMFY_PAPA_FAULT_TIMES=<n>`: act at n matching points only, then let them pass (default: all).
- `COMFY_PAPA_FAULT_FILE=<file>`: read these settings from a JSON file instead, at every point
  (`{"id": ..., "pattern": ..., "action": ..., "skip": n, "times": n, "pause": path}`), so that
  a test can change the fault of a running server; matches are counted per "id".
- `COMFY_PAPA_FAULT_TRACE=<file>`: append every point reached to that file (one per line), so a
  test can enumerate all write points and then crash at each in turn.

Point names: `write:<file>:{begin,written,synced,renamed}`, `append:<file>:{begin,written}`,
`feedback:*`, `commit:*`, `rollback:*` (see the calls in atomic.py, store.py and
host/feedback_server.py).
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import json
import os
import signal
import time

_hits: dict[str, int] = {}


def _config() -> dict | None:
    path = os.environ.get("COMFY_PAPA_FAULT_FILE")
    if path:
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None
    if not os.environ.get("COMFY_PAPA_FAULT"):
        return None
    return {
        "id": os.environ["COMFY_PAPA_FAULT"],
        "pattern": os.environ["COMFY_PAPA_FAULT"],
        "action": os.environ.get("COMFY_PAPA_FAULT_ACTION", "kill"),
        "skip": int(os.environ.get("COMFY_PAPA_FAULT_SKIP", "0")),
        "times": int(os.environ.get("COMFY_PAPA_FAULT_TIMES", "0")) or None,
        "pause": os.environ.get("COMFY_PAPA_FAULT_PAUSE"),
    }


def _exception(action: str, name: str) -> BaseException:
    if action == "enospc":
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC) + f" (injected at {name})")
    if action == "eio":
        return OSError(errno.EIO, os.strerror(errno.EIO) + f" (injected at {name})")
    cls = getattr(builtins, action.removeprefix("raise:"), None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise ValueError(f"COMFY_PAPA_FAULT_ACTION {action!r} is not a known action.")
    return cls(f"injected at {name}")


def point(name: str) -> None:
    trace = os.environ.get("COMFY_PAPA_FAULT_TRACE")
    if trace:
        with open(trace, "a") as f:
            f.write(name + "\n")
    cfg = _config()
    if not cfg or not fnmatch.fnmatchcase(name, cfg.get("pattern", "")):
        return
    key = str(cfg.get("id"))
    _hits[key] = _hits.get(key, 0) + 1
    skip, times = int(cfg.get("skip") or 0), cfg.get("times")
    if _hits[key] <= skip or (times and _hits[key] > skip + int(times)):
        return
    action = cfg.get("action", "kill")
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "pause":
        release = str(cfg["pause"])
        with open(release + ".reached", "a") as f:
            f.write(f"{os.getpid()} {name}\n")
        while not os.path.exists(release):
            time.sleep(0.02)
    else:
        raise _exception(action, name)
