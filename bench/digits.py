"""The PAPA paper's digits experiment as a benchmark: PAPA, EPAPA and baselines side by side.

Protocol (PAPA, Sarkar et al. 2026): a simulated user likes a candidate iff the digit classifier
reads a preferred digit (default {1, 4, 7, 9}; any set, or a rule of comfy_papa/digits/rules.py);
each round shows `--candidates` fresh samples of the current model (10), the user labels them and
the model is fine-tuned once; `--rounds` rounds (30, i.e. 300 labels), over several seeds. Every
method starts from the same base model (the digits demo model), samples with the same sampler and
gets the same labels budget:

  bestofn  no training: sample, keep what the user likes (the floor)
  papa     PAPA through the pack's nodes (PAPA Fine-tune, method PAPA)
  epapa    EPAPA, cut 0.4, through the same nodes
  d3po     D3PO on the same adapters (bench/digits_baselines.py), on either backend
  kto      Diffusion-KTO on the same adapters (bench/digits_baselines.py), on either backend

At 0 labels, every `--eval-every` rounds and at the end, `--eval-samples` fresh samples of the
current model (a fixed seed per point, the same for every method) give: the preferred fraction;
the min class share (the smallest share of one preferred digit among the preferred samples: 1/k
is perfectly balanced, 0 is a collapse onto fewer digits); the classifier's mean confidence (a
quality proxy); and the cumulative fine-tune seconds and network forward+backward passes.

One (method, seed) job per worker process (`--jobs` in parallel); the driver merges the workers'
partial JSON files into bench/results/digits.json (diffusers backend: digits_diffusers.json), a
PNG plot next to it, and prints a markdown table.

    .host/venv/bin/python bench/digits.py --jobs 15 --device cuda            # the full run
    nice -n 19 .host/venv/bin/python bench/digits.py --rounds 2 --seeds 1 --candidates 4 \\
        --eval-samples 16 --eval-every 1 --steps 8 --threads 1 --jobs 1 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Protocol

import torch

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.digits`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

HERE = Path(__file__).resolve().parent

METHODS = ("bestofn", "papa", "epapa", "d3po", "kto")

# Fine-tune hyper-parameters per method: the PAPA Fine-tune node's inputs (FinetuneSettings),
# plus a baseline's own ones (beta, ratio_clip, sampling_steps (None: --steps): see
# bench/digits_baselines.py). PAPA/EPAPA run with the node's defaults. The baselines get the same
# adapter, replay and steps per round (10), and learning rates of their own. Those were first
# tuned when the host's LoRA started the ComfyUI way (up random, down zero), under which one
# learning rate moved this model's adapter ~4-6x further than now (peft's start, see
# host.adapters.init_like_peft): at 5e-4 one step pushed every D3PO log-ratio out of its clip
# range and saturated KTO's sigmoids (|beta (g - z)| ~ 60), while 1e-5 (D3PO) and 1e-4 (KTO)
# kept the first rounds in range (D3PO |log-ratio| 0.2-7; KTO margins 1-17). The values below
# are those times 4, the same change of scale; BENCHMARKS.md reports each at both rates.
_ADAPTER = dict(steps=10, rank=8, alpha=8.0)
FINETUNE: dict[str, dict] = {
    "bestofn": {},
    # PAPA and EPAPA run with the PAPA Fine-tune node's defaults (core.settings.FinetuneSettings):
    # what an artist who changes nothing gets. --set overrides them for an experiment.
    "papa": {},
    "epapa": {},
    # batch_size = pairs per step (2 passes each); timesteps_per_sample only sizes the host's
    # memory estimate.
    "d3po": dict(
        _ADAPTER,
        learning_rate=4e-5,
        batch_size=8,
        timesteps_per_sample=2,
        beta=0.1,
        ratio_clip=0.1,
        sampling_steps=None,
    ),
    "kto": dict(_ADAPTER, learning_rate=4e-4, batch_size=16, timesteps_per_sample=1, beta=1000.0),
}
# Variants (run with --methods): "base" names the backend method they configure.
VARIANTS: dict[str, dict] = {
    # Leave-one-out ablations of the node's defaults (BENCHMARKS.md): each turns one part off.
    "papa_notrust": dict(c_trust=0.0, base="papa"),
    "papa_nodiv": dict(diversity=False, base="papa"),
    "papa_unpaired": dict(paired=False, base="papa"),
    "papa_cap15": dict(dislike_cap=1.5, base="papa"),
    # The reference code's objective (ELBO weights, c_pref 0.1, c_sim 0.009) with the rest of
    # the defaults (trust region, diversity, balanced paired batches, cap).
    "papa_elbo": dict(weighting="elbo", c_pref=0.1, c_sim=0.009, c_trust=0.05, base="papa"),
    # The reference objective alone (no trust region, uniform replay, unbalanced dislikes, cap
    # 1.5) at its own learning rate: what the pack did before, with the peft-style start.
    "papa_reference": dict(
        weighting="elbo",
        c_pref=0.1,
        c_sim=0.009,
        c_trust=0.0,
        diversity=False,
        balance=False,
        paired=False,
        dislike_cap=1.5,
        learning_rate=5e-4,
        base="papa",
    ),
}
ALL_SETTINGS = {**FINETUNE, **VARIANTS}

BACKENDS = {
    "comfy": ("digits_comfy", "ComfyDigits"),
    "diffusers": ("digits_diffusers", "DiffusersDigits"),
}
CANDIDATE_SEED = 1_000_000  # round r of seed s: CANDIDATE_SEED * (s + 1) + r * candidates
EVAL_SEED = 500_000_000  # eval after round r of seed s: EVAL_SEED + 1_000_000 * s + 1000 * r


class DigitsBackend(Protocol):
    """One (method, seed) run. `settings` holds steps, sampler, scheduler (sampling), finetune
    (FINETUNE[method]), candidates, eval_samples, threads. Images are gray [n, H, W] in [0, 1]."""

    def __init__(self, method: str, seed: int, workdir: Path, device: str, settings: dict): ...

    def candidates(self, n: int, seed: int) -> torch.Tensor:
        """n samples of the current model (candidate i from seed + i), kept for `feedback`."""
        ...

    def feedback(self, labels: list[int]) -> dict:
        """+1 / -1 / 0 per last candidate: record them and fine-tune one round (bestofn: no-op).
        Returns {"seconds": float, "passes": int}."""
        ...

    def evaluate(self, n: int, seed: int) -> torch.Tensor:
        """n fresh samples of the current model; nothing is recorded."""
        ...


def judge(gray: torch.Tensor, user: dict) -> tuple[list[int], torch.Tensor]:
    """The simulated user (PAPA Simulated User's logic): labels +1/-1 and class probabilities."""
    from comfy_papa.digits import rules
    from comfy_papa.digits.classifier import classify

    probs = classify(gray.unsqueeze(1))
    digits = probs.argmax(-1).tolist()
    labels = [
        int(
            rules.label(
                gray[i], d, set(user["preferred"]), user["rule"], user["threshold"], user["combine"]
            )
        )
        for i, d in enumerate(digits)
    ]
    return labels, probs


def normalised_entropy(counts: list[int]) -> float:
    """Entropy of a histogram over its k bins divided by log k: 1 uniform, 0 one bin (or none)."""
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts if c)
    return h / math.log(len(counts))


def digit_metrics(probs: torch.Tensor, labels: list[int], preferred: list[int]) -> dict:
    """Preferred fraction (liked by the user), min class share among preferred samples (None for
    a rule without digits; 0 when no sample is preferred), the normalised entropy of the
    preferred-class histogram (1 = uniform over the preferred digits, 0 = one digit; for a rule
    without digits: over all ten digits among the liked samples), mean confidence, class counts."""
    conf, digits = probs.max(-1)
    counts = torch.bincount(digits, minlength=10).tolist()
    min_share = None
    if preferred:
        mine = [counts[d] for d in preferred]
        min_share = min(mine) / sum(mine) if sum(mine) else 0.0
        entropy = normalised_entropy(mine)
    else:
        liked = [d for d, v in zip(digits.tolist(), labels, strict=True) if v > 0]
        entropy = normalised_entropy(
            torch.bincount(torch.tensor(liked, dtype=torch.long), minlength=10).tolist()
        )
    return {
        "preferred": sum(v > 0 for v in labels) / len(labels),
        "min_class_share": min_share,
        "entropy": entropy,
        "confidence": float(conf.mean()),
        "class_counts": counts,
    }


def eval_rounds(rounds: int, every: int) -> list[int]:
    """Rounds after which the model is evaluated: 0, every, 2 every, ..., and the last."""
    return sorted(set(range(0, rounds + 1, max(1, every))) | {rounds})


def run_job(method: str, seed: int, args, part: Path) -> dict:
    """One (method, seed) run; writes `part` after every evaluation and round."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    n = args.candidates
    raw = {
        "method": method,
        "seed": seed,
        "eval": [],
        "rounds": [],
        "rounds_completed": 0,
        "stopped": None,
    }
    user = user_settings(args)
    cum = {"seconds": 0.0, "passes": 0}

    def save():
        raw["wall_seconds"] = time.perf_counter() - start
        part.write_text(json.dumps(raw) + "\n")

    def evaluate(r: int):
        t = time.perf_counter()
        gray = backend.evaluate(args.eval_samples, EVAL_SEED + 1_000_000 * seed + 1000 * r)
        labels, probs = judge(gray, user)
        m = digit_metrics(probs, labels, user["preferred"])
        raw["eval"].append(
            dict(m, labels=r * n, round=r, finetune_seconds=cum["seconds"], passes=cum["passes"])
        )
        raw["eval"][-1]["eval_seconds"] = time.perf_counter() - t

    try:
        module, name = BACKENDS[args.backend]
        cls = getattr(importlib.import_module(f".{module}", __package__), name)
        settings = {
            "steps": args.steps,
            "sampler": args.sampler,
            "scheduler": args.scheduler,
            "finetune": finetune_settings(method, args),
            "candidates": n,
            "eval_samples": args.eval_samples,
            "threads": args.threads,
        }
        base = ALL_SETTINGS[method].get("base", method)
        backend = cls(base, seed, part.parent / f"{method}-{seed}", args.device, settings)
        raw["setup_seconds"] = time.perf_counter() - start
        points = eval_rounds(args.rounds, args.eval_every)
        evaluate(0)
        save()
        for r in range(args.rounds):
            if args.max_minutes and time.perf_counter() - start > 60 * args.max_minutes:
                raw["stopped"] = f"time limit of {args.max_minutes} min"
                break
            t = time.perf_counter()
            gray = backend.candidates(n, CANDIDATE_SEED * (seed + 1) + r * n)
            t_sample = time.perf_counter() - t
            labels, _ = judge(gray, user)
            fb = backend.feedback(labels)
            cum["seconds"] += float(fb["seconds"])
            cum["passes"] += int(fb["passes"])
            raw["rounds"].append(
                {
                    "liked": sum(v > 0 for v in labels),
                    "sample_seconds": t_sample,
                    "finetune_seconds": float(fb["seconds"]),
                    "passes": int(fb["passes"]),
                    "round_seconds": time.perf_counter() - t,
                    **{k: fb[k] for k in ("skipped", "drift") if k in fb},
                }
            )
            raw["rounds_completed"] = r + 1
            if r + 1 in points:
                evaluate(r + 1)
            save()
            last = raw["rounds"][-1]
            print(
                f"[{method} seed {seed}] round {r + 1}/{args.rounds}: liked {last['liked']}/{n}, "
                f"round {last['round_seconds']:.1f}s (sample {t_sample:.1f}s, fine-tune "
                f"{fb['seconds']:.1f}s, {fb['passes']} passes)",
                file=sys.stderr,
                flush=True,
            )
    except Exception as e:  # noqa: BLE001 - a failed job must still leave a mergeable part
        raw["error"] = f"{type(e).__name__}: {e}"
        raw["traceback"] = traceback.format_exc()
        print(raw["traceback"], file=sys.stderr, flush=True)
    save()
    return raw


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def merge(parts: list[dict], methods: list[str]) -> dict:
    """Per method, means over seeds at each evaluated label count (seeds that got that far)."""
    out = {}
    for method in methods:
        mine = sorted((p for p in parts if p["method"] == method), key=lambda p: p["seed"])
        points = sorted({e["labels"] for p in mine for e in p["eval"]})
        agg = {k: [] for k in ("preferred_mean", "preferred_sd", "min_class_share")}
        agg.update({k: [] for k in ("entropy_mean", "entropy_min")})
        agg.update({k: [] for k in ("confidence_mean", "finetune_seconds", "passes", "n_seeds")})
        for lab in points:
            at = [e for p in mine for e in p["eval"] if e["labels"] == lab]
            pm, psd = _mean_sd([e["preferred"] for e in at])
            shares = [e["min_class_share"] for e in at if e["min_class_share"] is not None]
            agg["preferred_mean"].append(pm)
            agg["preferred_sd"].append(psd)
            agg["min_class_share"].append(_mean_sd(shares)[0])
            ents = [e["entropy"] for e in at if e.get("entropy") is not None]
            agg["entropy_mean"].append(_mean_sd(ents)[0])
            agg["entropy_min"].append(min(ents) if ents else None)
            agg["confidence_mean"].append(_mean_sd([e["confidence"] for e in at])[0])
            agg["finetune_seconds"].append(_mean_sd([e["finetune_seconds"] for e in at])[0])
            agg["passes"].append(_mean_sd([e["passes"] for e in at])[0])
            agg["n_seeds"].append(len(at))
        out[method] = {
            "labels": points,
            **agg,
            "rounds_completed": [p["rounds_completed"] for p in mine],
            "errors": [p["error"] for p in mine if p.get("error")],
            "seeds": mine,
        }
    return out


def _cell(values: list, i: int | None, sd: list | None = None, spec=".2f") -> str:
    if i is None or values[i] is None:
        return "-"
    s = format(values[i], spec)
    return f"{s} ± {format(sd[i], spec)}" if sd is not None and sd[i] is not None else s


def markdown_table(methods: dict, columns=(0, 50, 100)) -> str:
    """method | preferred at 0/50/100/final labels | min class share, confidence, cumulative
    fine-tune seconds and passes at the final point."""
    final = max((max(r["labels"], default=0) for r in methods.values()), default=0)
    cols = sorted(set(columns) | {final})
    head = ["method", *(f"preferred @{c}" for c in cols)]
    head += [f"min class share @{final}", f"entropy @{final} (min over points)"]
    head += [f"confidence @{final}", "fine-tune s", "passes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in methods.items():
        idx = {lab: i for i, lab in enumerate(r["labels"])}
        last = idx.get(final)
        row = [name, *(_cell(r["preferred_mean"], idx.get(c), r["preferred_sd"]) for c in cols)]
        lowest = [v for v in r.get("entropy_min", []) if v is not None]
        ent = _cell(r.get("entropy_mean", []), last) if "entropy_mean" in r else "-"
        row += [_cell(r["min_class_share"], last), f"{ent} ({min(lowest):.2f})" if lowest else ent]
        row += [_cell(r["confidence_mean"], last)]
        row += [
            _cell(r["finetune_seconds"], last, spec=".1f"),
            _cell(r["passes"], last, spec=".0f"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(methods: dict, path: Path, title: str) -> None:
    try:
        import matplotlib
    except ImportError:  # a device image without it: the JSON has everything to plot later
        print(f"matplotlib is missing: no {path.name}", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, r in methods.items():
        if not r["labels"]:
            continue
        xs, ms = r["labels"], r["preferred_mean"]
        (line,) = ax.plot(xs, ms, marker="o", markersize=3, label=name)
        lo = [m - s for m, s in zip(ms, r["preferred_sd"], strict=True)]
        hi = [m + s for m, s in zip(ms, r["preferred_sd"], strict=True)]
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("labels")
    ax.set_ylabel("preferred fraction")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    else:
        cpu = platform.processor()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        info["device_name"] = cpu
    return info


def parse_value(text: str):
    """A --set value: int, float, true/false, or the string itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def finetune_settings(method: str, args) -> dict:
    """The method's fine-tune settings; --set KEY=VALUE overrides one (every trained method)."""
    out = {k: v for k, v in ALL_SETTINGS[method].items() if k != "base"}
    if method != "bestofn":
        for item in args.set:
            key, _, value = item.partition("=")
            out[key] = parse_value(value)
    return out


def user_settings(args) -> dict:
    from comfy_papa.digits import rules

    return {
        "preferred": sorted(rules.parse_digits(args.preferred)),
        "rule": args.rule,
        "threshold": args.threshold,
        "combine": args.combine,
    }


def parse_seeds(text: str) -> list[int]:
    """ "3" -> [0, 1, 2]; "4,7" -> [4, 7]."""
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    return list(range(int(text)))


def run_all(args, argv: list[str]) -> list[dict]:
    """Run every (method, seed) job as a worker subprocess, at most `--jobs` at a time."""
    from ._entry import module_command, module_env

    methods, seeds = args.methods.split(","), parse_seeds(args.seeds)
    jobs = [(m, s) for s in seeds for m in methods]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env = module_env(env)
    limit = 60 * args.max_minutes + 30 if args.max_minutes else None
    with tempfile.TemporaryDirectory(prefix="papa-digits-") as tmp:
        todo = [(m, s, Path(tmp) / f"{m}-{s}.json") for m, s in jobs]
        pending, running = list(todo), []
        while pending or running:
            while pending and len(running) < args.jobs:
                m, s, part = pending.pop(0)
                cmd = [*module_command(__spec__.name), *argv]
                cmd += ["--worker", m, str(s), "--part", str(part)]
                running.append((subprocess.Popen(cmd, env=env), time.monotonic()))
            time.sleep(0.5)
            for p, started in running:
                # A worker stops itself at --max-minutes (its own clock) between rounds; one
                # stuck inside a round is ended here, and its last written part still counts.
                if limit and time.monotonic() - started > limit:
                    p.kill()
            running = [(p, t) for p, t in running if p.poll() is None]
        out = []
        for m, s, part in todo:
            if part.exists():
                out.append(json.loads(part.read_text()))
            else:
                out.append(
                    {"method": m, "seed": s, "eval": [], "rounds": [], "rounds_completed": 0}
                    | {"error": "the worker wrote no results"}
                )
        return out


def parse_args(argv: list[str]):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=sorted(BACKENDS), default="comfy")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"default {','.join(METHODS)}")
    ap.add_argument("--seeds", default="3", help="a count (0..N-1) or a list: 3 or 4,7")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--eval-samples", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=5, help="rounds between evaluations")
    ap.add_argument("--preferred", default="1,4,7,9", help="liked digits; empty: the rule alone")
    ap.add_argument("--rule", default="none", help="a rule of comfy_papa/digits/rules.py RULES")
    ap.add_argument("--threshold", type=float, default=None, help="the rule's threshold")
    ap.add_argument("--combine", default="and", choices=["and", "or"])
    ap.add_argument("--sampler", default="euler")
    ap.add_argument("--scheduler", default="normal")
    ap.add_argument("--steps", type=int, default=20, help="sampling steps")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes in parallel")
    ap.add_argument("--max-minutes", type=float, default=0, help="per worker; 0: no limit")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a fine-tune setting (a FinetuneSettings field, or a baseline's own "
        "parameter) of every trained method, repeatable",
    )
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--part", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    unknown = sorted(set(args.methods.split(",")) - set(ALL_SETTINGS))
    if unknown:
        ap.error(f"unknown methods {unknown}; choose from {','.join(ALL_SETTINGS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        run_job(args.worker[0], int(args.worker[1]), args, args.part)
        return
    start = time.perf_counter()
    user = user_settings(args)
    parts = run_all(args, argv)
    methods = merge(parts, args.methods.split(","))
    stem = "digits" if args.backend == "comfy" else f"digits_{args.backend}"
    out = args.out or HERE / "results" / f"{stem}.json"
    settings = {
        k: getattr(args, k)
        for k in ("backend", "methods", "rounds", "candidates", "eval_samples", "eval_every")
        + ("sampler", "scheduler", "steps", "device", "threads", "jobs", "max_minutes")
    }
    settings.update(seeds=parse_seeds(args.seeds), user=user)
    result = {
        "benchmark": "digits",
        "settings": settings,
        "finetune": {m: finetune_settings(m, args) for m in args.methods.split(",")},
        "machine": machine(args.device),
        "wall_seconds": time.perf_counter() - start,
        "methods": methods,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    who = (
        "digits "
        + ",".join(map(str, user["preferred"]))
        + (f" + {user['rule']}" if user["rule"] != "none" else "")
    )
    title = (
        f"{who}; {args.backend}, {args.candidates}/round, {len(settings['seeds'])} seeds "
        f"({result['machine']['device_name']})"
    )
    plot(methods, out.with_suffix(".png"), title)
    for name, r in methods.items():
        for err in r["errors"]:
            print(f"{name}: {err}", file=sys.stderr)
        if any(c < args.rounds for c in r["rounds_completed"]):
            print(f"{name}: rounds completed per seed {r['rounds_completed']}", file=sys.stderr)
    print(markdown_table(methods))
    print(f"\nwrote {out} and {out.with_suffix('.png')} ({result['wall_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
