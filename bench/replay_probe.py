"""Open-loop probe of one round's objective: a fixed replay, trained round after round.

The closed loop of `bench/digits.py` mixes three kinds of noise: which candidates a round draws,
which of them the user likes, and the round's own minibatches. This probe removes the first two:
it draws `--candidates` samples of the base model once (diffusers backend, the demo model's twin),
labels them with the simulated user once, then fine-tunes `--rounds` rounds on that same replay
(no new labels) and evaluates the same `--eval-samples` noise seeds after every `--eval-every`
rounds (common random numbers: a change between two points is the model's, not the draw's).

What it shows: how far the objective moves the model towards what the replay likes, how fast, and
whether more training on the same labels keeps the gain or gives it back (a round-to-round
oscillation with fixed labels is the optimiser's, not the user's). It found that the dislike
settings, not the batch size, limited how far the digits model moved (BENCHMARKS.md).

    python bench/replay_probe.py --seeds 0,1 --set dislike_cap=1.1 --set dislike_weight=0.5

Prints a table (preferred / entropy / confidence per evaluated round) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.replay_probe`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

from .digits import digit_metrics, judge, parse_seeds, parse_value, user_settings  # noqa: E402
from .digits_diffusers import DiffusersDigits  # noqa: E402

HERE = Path(__file__).resolve().parent


def probe(seed: int, args, finetune: dict) -> dict:
    """One seed: label `args.candidates` base samples once, train `args.rounds` rounds on them."""
    user = user_settings(args)
    settings = {
        "steps": args.steps,
        "sampler": "euler",
        "scheduler": "normal",
        "finetune": finetune,
    }
    with tempfile.TemporaryDirectory(prefix="papa-probe-") as work:
        backend = DiffusersDigits("papa", seed, Path(work), "cpu", settings)
        points = []

        def evaluate(r: int) -> None:
            gray = backend.evaluate(args.eval_samples, 777 + seed)
            labels, probs = judge(gray, user)
            points.append(dict(digit_metrics(probs, labels, user["preferred"]), round=r))

        evaluate(0)
        gray = backend.candidates(args.candidates, 1000 + seed)
        labels, _ = judge(gray, user)
        start = time.perf_counter()
        backend.feedback(labels)  # round 1
        for r in range(1, args.rounds + 1):
            if r > 1:
                backend.session.finetune(backend.round_cls, **backend.finetune_kw)
            if r % args.eval_every == 0 or r == args.rounds:
                evaluate(r)
        return {
            "seed": seed,
            "liked": sum(v > 0 for v in labels),
            "labelled": len(labels),
            "train_seconds": time.perf_counter() - start,
            "eval": points,
        }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="2", help="a count (0..N-1) or a list: 3 or 4,7")
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--eval-samples", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20, help="sampling steps")
    ap.add_argument("--preferred", default="1,4,7,9")
    ap.add_argument("--rule", default="none")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--combine", default="and", choices=["and", "or"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "replay_probe.json")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    finetune = {}
    for item in args.set:
        key, _, value = item.partition("=")
        finetune[key] = parse_value(value)
    runs = [probe(seed, args, finetune) for seed in parse_seeds(args.seeds)]
    print(
        "| seed | liked / labelled | " + " | ".join(f"round {p['round']}" for p in runs[0]["eval"])
    )
    print("|---|---|" + "---|" * len(runs[0]["eval"]))
    for run in runs:
        cells = [
            f"{p['preferred']:.2f} / {p['entropy']:.2f} / {p['confidence']:.2f}"
            for p in run["eval"]
        ]
        print(f"| {run['seed']} | {run['liked']} / {run['labelled']} | " + " | ".join(cells))
    print("\ncells: preferred fraction / preferred-class entropy / classifier confidence")
    out = {"benchmark": "replay_probe", "settings": vars(args) | {"out": str(args.out)}}
    out["finetune"] = finetune
    out["runs"] = runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
