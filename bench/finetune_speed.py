"""Fine-tune step time and peak memory: PAPA Fine-tune vs ComfyUI's TrainLoraNode.

Same model, same batch (forward+backward passes per step), same rank, one process per method so
each peak memory is its own. Step time = (time of 1 + S steps - time of 1 step) / S, the same
measure for both. Prints a table and writes bench/results/finetune_speed.json.

    .host/venv/bin/python bench/finetune_speed.py [--device cpu|cuda] [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.finetune_speed`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

HERE = Path(__file__).resolve().parent


def _setup(args):
    from .comfy_inproc import boot, tiny_checkpoint

    boot(args.device)
    import comfy.sd
    import torch

    ckpt = args.checkpoint or str(tiny_checkpoint())
    model, clip, _vae = comfy.sd.load_checkpoint_guess_config(ckpt)[:3]
    cond = clip.encode_from_tokens_scheduled(clip.tokenize("a portrait"))
    gen = torch.Generator().manual_seed(0)
    h = args.size // 8
    latents = torch.randn((args.samples, 4, h, h), generator=gen)
    return model, cond, latents


def _time_ours(args, steps: int) -> float:
    model, cond, latents = _setup(args)
    import torch

    from comfy_papa.core.settings import FinetuneSettings
    from comfy_papa.feedback import Feedback
    from comfy_papa.host.rounds import finetune
    from comfy_papa.profile.store import Profile

    settings = FinetuneSettings(
        steps=steps,
        rank=args.rank,
        alpha=float(args.rank),
        batch_size=args.samples,
        timesteps_per_sample=args.timesteps,
        gradient_checkpointing=args.checkpointing,
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        profile = Profile.open(tmp, "bench")
        n = latents.shape[0]
        fb = Feedback(latents, [1.0, -1.0] * (n // 2), [f"c{i}" for i in range(n)], cond)
        start = time.perf_counter()
        finetune(model, fb, profile, settings)
        return time.perf_counter() - start


def _time_trainlora(args, steps: int) -> float:
    model, cond, latents = _setup(args)
    import torch
    from comfy_extras.nodes_train import TrainLoraNode

    batch = args.samples * args.timesteps
    lat = torch.cat([latents] * args.timesteps)
    with torch.inference_mode():
        start = time.perf_counter()
        TrainLoraNode.execute(
            model=[model],
            # two dicts: with a single one TrainLoraNode 0.3.75 fails (multi_res unset)
            latents=[{"samples": lat[: batch // 2]}, {"samples": lat[batch // 2 :]}],
            positive=[cond],
            batch_size=[batch],
            steps=[steps],
            grad_accumulation_steps=[1],
            learning_rate=[1e-4],
            rank=[args.rank],
            optimizer=["AdamW"],
            loss_function=["MSE"],
            seed=[0],
            training_dtype=["fp32" if args.device == "cpu" else "bf16"],
            lora_dtype=["fp32" if args.device == "cpu" else "bf16"],
            algorithm=["LoRA"],
            gradient_checkpointing=[args.checkpointing],
            existing_lora=["[None]"],
        )
        return time.perf_counter() - start


def _child(args) -> None:
    from .comfy_inproc import peak_memory_mb

    fn = _time_ours if args.child == "papa" else _time_trainlora
    t = fn(args, args.steps)
    print(json.dumps({"seconds": t, "peak_mb": peak_memory_mb(args.device)}))


def _run_child(args, method: str, steps: int) -> dict:
    from ._entry import module_command, module_env

    cmd = [*module_command(__spec__.name), "--child", method, "--steps", str(steps)]
    for k in ("device", "size", "samples", "timesteps", "rank"):
        cmd += [f"--{k}", str(getattr(args, k))]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if args.checkpointing:
        cmd.append("--checkpointing")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=module_env()).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--checkpoint", default=None, help="default: the tiny SD1.5 test checkpoint")
    ap.add_argument("--size", type=int, default=64, help="image size (latent = size / 8)")
    ap.add_argument("--samples", type=int, default=4, help="PAPA: candidates per step")
    ap.add_argument("--timesteps", type=int, default=2, help="PAPA: timesteps per candidate")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="S, the timed steps")
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on")
    ap.add_argument("--child", choices=["papa", "trainlora"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    rows = {}
    for method in ("papa", "trainlora"):
        one = _run_child(args, method, 1)
        many = _run_child(args, method, 1 + args.steps)
        rows[method] = {
            "step_seconds": (many["seconds"] - one["seconds"]) / args.steps,
            "peak_mb": many["peak_mb"],
        }
    ratio = rows["papa"]["step_seconds"] / rows["trainlora"]["step_seconds"]
    mem_ratio = rows["papa"]["peak_mb"] / rows["trainlora"]["peak_mb"]
    passes = args.samples * args.timesteps
    print(
        f"device {args.device}, {args.size}x{args.size}, {passes} forward+backward passes per "
        f"step (PAPA: {args.samples} candidates x {args.timesteps} timesteps, plus a no-grad "
        f"base-model pass), rank {args.rank}, checkpointing {args.checkpointing}"
    )
    print(f"{'method':<12}{'s/step':>10}{'peak MB':>10}")
    for m, r in rows.items():
        print(f"{m:<12}{r['step_seconds']:>10.3f}{r['peak_mb']:>10.0f}")
    print(f"ratio PAPA/TrainLoraNode: time {ratio:.2f}x, peak memory {mem_ratio:.2f}x")
    result = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "args": {k: v for k, v in vars(args).items() if k != "child"},
        "rows": rows,
        "time_ratio": ratio,
        "memory_ratio": mem_ratio,
    }
    out = HERE / "results" / "finetune_speed.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
