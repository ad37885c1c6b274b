"""Running a bench script by its path as the module it is (`bench/_entry.py`, no pack import).

`python bench/digits.py` puts bench/ first on sys.path, not the repository root, so neither
`bench` nor `comfy_papa` is importable. Each script therefore hands over, right after its
standard-library and third-party imports and before it imports anything of the pack:

    if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.<name>`
        from _entry import rerun_as_module

        rerun_as_module(__file__)

`rerun_as_module` replaces the process (same pid, so `timeout` and signals still reach it) with
`python -m bench.<name>` and the same arguments, the repository root first on PYTHONPATH. Worker
processes are started the same way (`module_command`, `module_env`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parents[1]


def module_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the repository root first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return env


def module_command(module: str) -> list[str]:
    """The command line that runs bench module `module` ("bench.digits") in a new process."""
    return [sys.executable, "-m", module]


def rerun_as_module(script: str) -> NoReturn:
    """Replace this process with `python -m bench.<script's name>` and the same arguments."""
    cmd = module_command(f"bench.{Path(script).stem}") + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, module_env())
