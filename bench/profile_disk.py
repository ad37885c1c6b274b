"""Disk use of a digits profile, measured round by round (issue 15's goal: <= 40 MB after 50).

    python -m bench.profile_disk [--rounds 50] [--candidates 10] [--workdir DIR]

Drives the pack's nodes in-process on the CPU exactly as the digits benchmark does
(bench/digits_comfy.py: PAPA Digits Demo Loader -> PAPA Profile -> PAPA Apply Profile -> PAPA
Candidate Sampler -> PAPA Labels -> PAPA Fine-tune, PAPA with the node's defaults) and, after
every round, adds up the bytes of every file in the profile folder. Each round labels its
candidates with a fixed pattern (4 likes, 4 dislikes, 2 skips out of 10, rotated each round).

The fine-tune runs 1 step a round (`--finetune-steps`) and the sampler 4 steps: what a round
writes (the adapter, its optimizer state, the round's replay rows, the conditioning, round.json,
the pending file and history lines) has the same size whatever the number of steps, so this
measures the disk use of any step count in minutes. Prints a table and writes
bench/results/profile_disk_digits.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.profile_disk`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

RESULTS = Path(__file__).resolve().parent / "results" / "profile_disk_digits.json"
PATTERN = [1, -1, 1, -1, 0, 1, -1, 1, -1, 0]  # 4 likes, 4 dislikes, 2 skips
GOAL_MB = 40.0


def folder_bytes(folder: Path) -> dict[str, int]:
    """Bytes of the files under `folder`, by part: rounds/, pending/, archive/, the rest."""
    out = {"total": 0, "rounds": 0, "pending": 0, "archive": 0, "other": 0, "files": 0}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            top = path.relative_to(folder).parts[0]
            out[top if top in ("rounds", "pending", "archive") else "other"] += size
            out["total"] += size
            out["files"] += 1
    return out


def round_folders(folder: Path) -> dict[str, int]:
    """Bytes of each round folder (rNNNN -> bytes)."""
    rounds = folder / "rounds"
    if not rounds.is_dir():
        return {}
    return {
        d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        for d in sorted(rounds.iterdir())
        if d.is_dir()
    }


def labels_for(round_: int, n: int) -> list[int]:
    k = round_ % len(PATTERN)
    cycle = PATTERN[k:] + PATTERN[:k]
    return [cycle[i % len(cycle)] for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--finetune-steps", type=int, default=1)
    ap.add_argument("--sampler-steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="papa-disk-"))
    import torch

    from .digits_comfy import ComfyDigits

    settings = {
        "steps": args.sampler_steps,
        "sampler": "euler",
        "scheduler": "normal",
        "finetune": {"steps": args.finetune_steps},
    }
    backend = ComfyDigits("papa", args.seed, workdir, "cpu", settings)
    folder = workdir / "models" / "papa_profiles" / backend.profile_name
    rows = []
    started = time.monotonic()
    print(f"profile folder: {folder}")
    print(
        f"{'round':>5} {'total MB':>9} {'growth kB':>10} {'rounds MB':>10} {'pending kB':>11} "
        f"{'files':>6} {'s':>6}"
    )
    prev = 0
    for r in range(1, args.rounds + 1):
        t0 = time.monotonic()
        backend.candidates(args.candidates, seed=args.seed * 100_000 + r)
        fb = backend.feedback(labels_for(r, args.candidates))
        size = folder_bytes(folder)
        row = dict(size, round=r, growth=size["total"] - prev, seconds=time.monotonic() - t0)
        row["passes"] = fb.get("passes")
        rows.append(row)
        prev = size["total"]
        print(
            f"{r:5d} {size['total'] / 1e6:9.3f} {row['growth'] / 1e3:10.1f} "
            f"{size['rounds'] / 1e6:10.3f} {size['pending'] / 1e3:11.1f} {size['files']:6d} "
            f"{row['seconds']:6.1f}",
            flush=True,
        )
    per_round = round_folders(folder)
    last = rows[-1]
    late = [x["growth"] for x in rows if x["round"] > 11]  # past the first retention cycle
    summary = {
        "rounds": args.rounds,
        "total_bytes": last["total"],
        "total_mb": last["total"] / 1e6,
        "goal_mb": GOAL_MB,
        "goal_met": last["total"] / 1e6 <= GOAL_MB,
        "growth_bytes_rounds_12_on": {"min": min(late, default=0), "max": max(late, default=0)},
        "round_folder_bytes": per_round,
        "distinct_round_folder_sizes": sorted(set(per_round.values())),
    }
    out = {
        "what": "digits profile (PAPA, node defaults but fine-tune steps), bytes after each round",
        "settings": dict(
            vars(args), workdir=str(workdir), out=str(args.out), labels_pattern=PATTERN
        ),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "wall_s": time.monotonic() - started,
        "summary": summary,
        "per_round": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(
        f"after {args.rounds} rounds: {last['total']:,} B = {last['total'] / 1e6:.2f} MB "
        f"(goal <= {GOAL_MB:g} MB: {'met' if summary['goal_met'] else 'NOT met'})"
    )
    print(f"growth per round from round 12 on: {min(late, default=0):,}-{max(late, default=0):,} B")
    print(f"round folder sizes (B): {summary['distinct_round_folder_sizes']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
