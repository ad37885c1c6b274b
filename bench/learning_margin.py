"""How far 5 oracle-labelled rounds move the liked fraction, PAPA and EPAPA, over seeds.

Runs the real nodes in a real ComfyUI server (the same loop as tests/host/test_learning.py) and
prints a table; writes bench/results/learning_margin.json. The test's asserted margin is chosen
from these numbers.

    .host/venv/bin/python bench/learning_margin.py [--seeds 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.learning_margin`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

HERE = Path(__file__).resolve().parent


def main() -> None:
    # The test harness (tests/harness), imported from the repository root like the pack.
    from tests.harness.comfy_server import ComfyServer, make_base_directory
    from tests.harness.oracle_loop import DIGITS_FINETUNE, Source, run_loop
    from tests.harness.tiny_models import ensure_tiny_models

    FINETUNE = dict(DIGITS_FINETUNE)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--methods", default="PAPA,EPAPA")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=FINETUNE["learning_rate"])
    ap.add_argument("--c-sim", type=float, default=FINETUNE["c_sim"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "learning_margin.json")
    ap.add_argument("--oracle", default="brightness", choices=["brightness", "digits"])
    ap.add_argument("--c-anchor", type=float, default=FINETUNE.get("c_anchor", 0.0))
    ap.add_argument("--dislike", default="-", help='label for "not liked": "-" or "0" (skip)')
    args = ap.parse_args()
    FINETUNE["learning_rate"] = args.lr
    FINETUNE["c_sim"] = args.c_sim
    FINETUNE["c_anchor"] = args.c_anchor
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(make_base_directory(Path(tmp), ensure_tiny_models())).start()
        try:
            for method in args.methods.split(","):
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    t = time.perf_counter()
                    ft = dict(FINETUNE, method=method, seed=seed)
                    res = run_loop(
                        server,
                        Source(oracle=args.oracle),
                        f"margin-{method}-{seed}",
                        ft,
                        rounds=args.rounds,
                        seed=seed,
                        dislike=args.dislike,
                    )
                    res.update(method=method, seed=seed, seconds=time.perf_counter() - t)
                    rows.append(res)
                    print(
                        f"{method:6} seed {seed}: liked {res['before']:.2f} -> "
                        f"{res['after']:.2f} ({res['seconds']:.0f}s)",
                        flush=True,
                    )
        finally:
            server.stop()
    summary = {}
    print(f"\n{'method':8}{'before':>8}{'after':>8}{'min gain':>10}{'mean gain':>10}")
    for method in args.methods.split(","):
        mine = [r for r in rows if r["method"] == method]
        gains = [r["after"] - r["before"] for r in mine]
        summary[method] = {
            "before_mean": statistics.mean(r["before"] for r in mine),
            "after_mean": statistics.mean(r["after"] for r in mine),
            "min_gain": min(gains),
            "mean_gain": statistics.mean(gains),
        }
        s = summary[method]
        print(
            f"{method:8}{s['before_mean']:>8.2f}{s['after_mean']:>8.2f}"
            f"{s['min_gain']:>10.2f}{s['mean_gain']:>10.2f}"
        )
    out = args.out
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "finetune": FINETUNE,
                "rounds": args.rounds,
                "oracle": args.oracle,
                "runs": rows,
                "summary": summary,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
