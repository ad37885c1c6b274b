"""A second process that writes a profile: `python lock_driver.py ROOT NAME OP...`.

OPs, in order, each on a freshly opened profile like a server: `record:<request_id>` (two labels),
`commit` (the next round, as store_crash_driver.next_round builds it). With the store's fault
hook set to `pause` (COMFY_PAPA_FAULT=<point>, COMFY_PAPA_FAULT_ACTION=pause,
COMFY_PAPA_FAULT_PAUSE=<file>) the process stands at that point, holding the profile's lock,
until the test creates the file. Prints one line per finished op.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from comfy_papa.profile.store import Profile  # noqa: E402
from tests.reliability.store_crash_driver import next_round  # noqa: E402


def record(p: Profile, rid: str) -> None:
    p.record_feedback(
        rid,
        p.round + 1,
        ["a", "b"],
        [1.0, -1.0],
        torch.zeros(2, 4, 2, 2),
        {"cross_attn": torch.ones(1, 2, 3)},
    )


def main() -> None:
    root, name, ops = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for op in ops:
        p = Profile.open(root, name)
        if op.startswith("record:"):
            record(p, op.split(":", 1)[1])
        elif op == "commit":
            state, consumed = next_round(p)
            p.commit_round(state, "fp", {"method": "PAPA"}, consumed)
        else:
            raise SystemExit(f"unknown op {op!r}")
        print(op, flush=True)


if __name__ == "__main__":
    main()
