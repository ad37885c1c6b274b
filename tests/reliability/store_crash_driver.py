"""Run a scripted profile life (feedback, commits, rollback) and crash it at chosen write points.

Used by test_faults.py in a subprocess: `python store_crash_driver.py trace ROOT` runs the script
once with COMFY_PAPA_FAULT_TRACE set and prints every write point reached; `python
store_crash_driver.py crash OUT CASES.json` forks one child per (point, occurrence), each with
COMFY_PAPA_FAULT=<point> COMFY_PAPA_FAULT_SKIP=<occurrence> in its own folder, and records how
each child ended. Children die by a real SIGKILL sent by the store's fault hook to itself.

The acknowledgements file (`acks.txt`, fsynced) plays the browser's 200: a line is written only
after the operation returned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from comfy_papa.core.replay import ReplayBuffer  # noqa: E402
from comfy_papa.profile.store import Profile, RoundState  # noqa: E402

NAME = "artist"
# (operation, argument): the profile's life, each op on a freshly opened profile like the server.
SCRIPT = [
    ("feedback", ("req1", [1.0, -1.0, 0.0])),
    ("commit", 1),
    ("feedback", ("req2", [1.0, 1.0])),
    ("commit", 2),
    ("rollback", 1),
    ("feedback", ("req3", [-1.0, 1.0])),
    ("commit", 2),
]


def _ack(root: Path, line: str) -> None:
    fd = os.open(root / "acks.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def next_round(p: Profile) -> tuple[RoundState, list[str]]:
    """What host/rounds.py does without a model: last replay + pending, a deterministic adapter."""
    state = p.load_round()
    replay = ReplayBuffer()
    if len(state.replay):
        old = state.replay
        replay.add(old.latents, old.labels, old.rounds, old.ids, old.cond)
    consumed = []
    for f in p.pending():
        n = len(f.ids)
        replay.add(
            f.latents,
            f.labels,
            torch.full((n,), f.round),
            [f"{f.request_id}:{c}" for c in f.ids],
            {"group": torch.zeros(n, dtype=torch.long)},
        )
        consumed.append(f.request_id)
    r = p.round + 1
    new = RoundState(
        r,
        adapter={"m.lora_up.weight": torch.full((3, 2), float(r)), "m.alpha": torch.tensor(2.0)},
        adapter_meta={"rank": "2", "alpha": "2.0"},
        optimizer={"m.lora_up.weight::step": torch.tensor(float(r))},
        replay=replay,
        conds={"g0.cross_attn": torch.ones(1, 2, 3)},
    )
    return new, consumed


def commit_labelled_round(
    p: Profile, request_id: str, value: float, settings: dict | None = None
) -> RoundState:
    """Record a like and a dislike (latents filled with `value`) for the next round and commit
    that round with `next_round`; `settings` default {"method": "PAPA"}. Returns the round."""
    p.record_feedback(
        request_id,
        p.round + 1,
        ["a", "b"],
        [1.0, -1.0],
        torch.full((2, 4, 2, 2), float(value)),
        {"cross_attn": torch.ones(1, 2, 3)},
    )
    state, consumed = next_round(p)
    p.commit_round(state, "fp", {"method": "PAPA"} if settings is None else settings, consumed)
    return state


def run_script(root: Path) -> None:
    Profile.open(root, NAME)
    _ack(root, "open")
    for op, arg in SCRIPT:
        p = Profile.open(root, NAME, create=False)
        if op == "feedback":
            rid, labels = arg
            n = len(labels)
            p.record_feedback(
                rid,
                p.round + 1,
                [f"c{i}" for i in range(n)],
                labels,
                torch.arange(n * 16, dtype=torch.float32).reshape(n, 4, 2, 2),
                {"cross_attn": torch.ones(1, 2, 3)},
            )
            _ack(root, f"feedback {rid}")
        elif op == "commit":
            state, consumed = next_round(p)
            assert state.round == arg, (state.round, arg)
            p.commit_round(state, "fp-tiny", {"method": "PAPA", "rank": 2}, consumed)
            _ack(root, f"commit {arg}")
        elif op == "rollback":
            p.rollback(arg)
            _ack(root, f"rollback {arg}")


def main() -> None:
    mode = sys.argv[1]
    if mode == "trace":
        root = Path(sys.argv[2])
        os.environ["COMFY_PAPA_FAULT_TRACE"] = str(root / "trace.txt")
        run_script(root)
        return
    out, cases = Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text())
    results = []
    for i, (name, skip) in enumerate(cases):
        root = out / f"case{i:03d}"
        root.mkdir(parents=True)
        pid = os.fork()
        if pid == 0:  # child: crash at the point, or finish (exit 0) if it is never reached
            os.environ["COMFY_PAPA_FAULT"] = name
            os.environ["COMFY_PAPA_FAULT_SKIP"] = str(skip)
            try:
                run_script(root)
            except BaseException:
                os._exit(3)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        results.append({"point": name, "skip": skip, "dir": str(root), "killed": killed})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
