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
bench/results/profile_disk_digits.json after every round ("partial": true until the last).

`--resume` with the `--workdir` of a stopped run goes on from the profile's round, keeping the
rows the JSON already holds (stop it between rounds, while it samples: nothing is written then).
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


def _write(args, workdir: Path, rows: list[dict], started: float, partial: bool) -> dict:
    """Write the JSON record of the rounds so far; returns it."""
    import torch

    folder = workdir / "models" / "papa_profiles" / f"digits-papa-{args.seed}"
    per_round = round_folders(folder)
    last = rows[-1]
    late = [x["growth"] for x in rows if x["round"] > 11]  # past the first retention cycle
    summary = {
        "rounds": last["round"],
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
        "partial": partial,
        "settings": dict(
            vars(args), workdir=str(workdir), out=str(args.out), labels_pattern=PATTERN
        ),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "wall_s_this_run": time.monotonic() - started,
        "summary": summary,
        "per_round": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1, default=str) + "\n")
    tmp.replace(args.out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--finetune-steps", type=int, default=1)
    ap.add_argument("--sampler-steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: a new temp folder")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: no spinning)")
    ap.add_argument("--resume", action="store_true", help="go on with --workdir's profile")
    args = ap.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="papa-disk-"))
    import torch

    torch.set_num_threads(args.threads)

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
    if args.resume and args.out.exists():
        done = json.loads(args.out.read_text())
        if done["settings"]["workdir"] != str(workdir):
            raise SystemExit(f"{args.out} is the record of another workdir; not resuming.")
        rows = [x for x in done["per_round"] if x["round"] <= backend._profile().round]
    first = len(rows) + 1
    if backend._profile().round != len(rows):
        raise SystemExit(
            f"profile at round {backend._profile().round}, {len(rows)} rows recorded: "
            "start a new --workdir (or --resume one whose JSON holds every round)."
        )
    started = time.monotonic()
    print(f"profile folder: {folder}")
    print(
        f"{'round':>5} {'total MB':>9} {'growth kB':>10} {'rounds MB':>10} {'pending kB':>11} "
        f"{'files':>6} {'s':>6}"
    )
    prev = rows[-1]["total"] if rows else 0
    for r in range(first, args.rounds + 1):
        t0 = time.monotonic()
        backend.candidates(args.candidates, seed=args.seed * 100_000 + r)
        fb = backend.feedback(labels_for(r, args.candidates))
        size = folder_bytes(folder)
        row = dict(size, round=r, growth=size["total"] - prev, seconds=time.monotonic() - t0)
        row["passes"] = fb.get("passes")
        rows.append(row)
        prev = size["total"]
        _write(args, workdir, rows, started, partial=r < args.rounds)
        print(
            f"{r:5d} {size['total'] / 1e6:9.3f} {row['growth'] / 1e3:10.1f} "
            f"{size['rounds'] / 1e6:10.3f} {size['pending'] / 1e3:11.1f} {size['files']:6d} "
            f"{row['seconds']:6.1f}",
            flush=True,
        )
    out = _write(args, workdir, rows, started, partial=False)
    summary, last = out["summary"], rows[-1]
    print(
        f"after {args.rounds} rounds: {last['total']:,} B = {last['total'] / 1e6:.2f} MB "
        f"(goal <= {GOAL_MB:g} MB: {'met' if summary['goal_met'] else 'NOT met'})"
    )
    late = summary["growth_bytes_rounds_12_on"]
    print(f"growth per round from round 12 on: {late['min']:,}-{late['max']:,} B")
    print(f"round folder sizes (B): {summary['distinct_round_folder_sizes']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
