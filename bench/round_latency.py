"""Round latency and peak memory at real model sizes: SD1.5, SDXL and SD3 (a flow model).

Each model is built with ComfyUI's own classes (comfy.supported_models config -> get_model ->
ModelPatcher) and random weights: time and memory do not depend on weight values, and nothing is
downloaded. One round runs through the pack's real code, in its own subprocess per model:

  sample   comfy_papa.host.sampling.sample_candidates (comfy.sample, euler/normal, CFG on)
  decode   comfy.sd.VAE.decode (SD VAE; 16-channel SD3 VAE) with random weights
  papa     comfy_papa.host.rounds.finetune, method PAPA, on a fresh profile
  epapa    the same with method EPAPA
  trainlora  ComfyUI's TrainLoraNode on the same model, rank and batch (pairs per step)

round = sample + decode + fine-tune (one method: an artist runs one). Step times come from the
host's progress-bar hook (every step reports), as (last report - first report) / (steps - 1), so
model loading and setup stay out of them. Peak memory per phase: on CUDA
torch.cuda.max_memory_allocated after reset_peak_memory_stats; on CPU the peak RSS (VmHWM, reset
through /proc/self/clear_refs at each phase start), so it includes the model weights.

    .host/venv/bin/python bench/round_latency.py --device cpu      # reduced sizes, minutes
    .host/venv/bin/python bench/round_latency.py --device cuda     # the issue's full sizes
    .host/venv/bin/python bench/round_latency.py --smoke           # tiny models, seconds

Writes bench/results/round_latency_<device>.json (smoke: round_latency_smoke.json).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run by path: as `python -m bench.round_latency`
    from _entry import rerun_as_module

    rerun_as_module(__file__)

HERE = Path(__file__).resolve().parent

MODELS = ("sd15", "sdxl", "sd3")

# The sizes (CUDA) and the reduced ones that run on this project's 2-core CPU machines.
# candidates, image size, sampling steps, fine-tune steps, timesteps per sample
FULL = {
    "sd15": dict(candidates=8, size=512, steps=20, cfg=7.0),
    "sdxl": dict(candidates=4, size=1024, steps=20, cfg=7.0),
    "sd3": dict(candidates=4, size=1024, steps=20, cfg=4.5),
}
CPU = {  # SDXL/SD3 at 128 px: at 256 px one SDXL CFG forward took ~38 s on the shared 2 cores
    "sd15": dict(candidates=2, size=256, steps=4, cfg=7.0, ft_steps=2, ft_timesteps=1),
    "sdxl": dict(candidates=1, size=128, steps=2, cfg=7.0, ft_steps=2, ft_timesteps=1),
    "sd3": dict(candidates=1, size=128, steps=2, cfg=4.5, ft_steps=2, ft_timesteps=1),
}
SMOKE = {
    "sd15": dict(candidates=2, size=64, steps=2, cfg=7.0, ft_steps=2, ft_timesteps=1),
    "sdxl": dict(candidates=2, size=64, steps=2, cfg=7.0, ft_steps=2, ft_timesteps=1),
    "sd3": dict(candidates=2, size=64, steps=2, cfg=4.5, ft_steps=2, ft_timesteps=1),
}

COMMON = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "in_channels": 4,
    "model_channels": 320,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
# comfy/model_detection.py, unet_config_from_diffusers_unet (dtype is set by set_inference_dtype)
UNET = {
    "sd15": {
        **COMMON,
        "adm_in_channels": None,
        "num_res_blocks": [2, 2, 2, 2],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "channel_mult": [1, 2, 4, 4],
        "transformer_depth_middle": 1,
        "use_linear_in_transformer": False,
        "context_dim": 768,
        "num_heads": 8,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    },
    "sdxl": {
        **COMMON,
        "num_classes": "sequential",
        "adm_in_channels": 2816,
        "num_res_blocks": [2, 2, 2],
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "channel_mult": [1, 2, 4],
        "transformer_depth_middle": 10,
        "use_linear_in_transformer": True,
        "context_dim": 2048,
        "num_head_channels": 64,
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    },
    # SD3 medium (2B): what model_detection.detect_unet_config reads from its checkpoint
    "sd3": {
        "in_channels": 16,
        "patch_size": 2,
        "out_channels": 16,
        "depth": 24,
        "input_size": None,
        "adm_in_channels": 2048,
        "context_embedder_config": {
            "target": "torch.nn.Linear",
            "params": {"in_features": 4096, "out_features": 1536},
        },
        "num_patches": 36864,
        "pos_embed_max_size": 192,
        "pos_embed_scaling_factor": None,
        "x_block_self_attn_layers": [],
    },
}
# --smoke: the same classes, one level, one block
TINY = {
    "sd15": {
        **UNET["sd15"],
        "model_channels": 64,
        "num_res_blocks": [1],
        "channel_mult": [1],
        "transformer_depth": [1],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1],
    },
    "sdxl": {
        **UNET["sdxl"],
        "model_channels": 64,
        "num_res_blocks": [1],
        "channel_mult": [1],
        "transformer_depth": [1],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1],
    },
    "sd3": {
        **UNET["sd3"],
        "depth": 2,
        "context_embedder_config": {
            "target": "torch.nn.Linear",
            "params": {"in_features": 4096, "out_features": 128},
        },
    },
}
# text-encoder output shapes: (cross-attention [1, tokens, dim], pooled dim or None)
COND = {"sd15": ((1, 77, 768), None), "sdxl": ((1, 77, 2048), 1280), "sd3": ((1, 154, 4096), 2048)}


def _dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def init_random_(module, seed: int = 0) -> int:
    """Fill every parameter in place: matrices N(0, (0.5 / sqrt(fan_in))^2), biases 0, other
    vectors (norm scales) 1. comfy.ops skips init: the weights are torch.empty garbage. Returns
    the parameter count."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in module.named_parameters():
            n += p.numel()
            _fill_(name, p, gen)
    return n


def _fill_(name, p, gen) -> None:
    if p.ndim >= 2:
        fan_in = p[0].numel()
        if p.device.type == "cpu":
            p.normal_(0.0, 0.5 / math.sqrt(fan_in), generator=gen)
        else:
            p.normal_(0.0, 0.5 / math.sqrt(fan_in))
    elif name.endswith("bias"):
        p.zero_()
    else:  # norm scales (GroupNorm/LayerNorm/RMSNorm weights)
        p.fill_(1.0)


def build_model(arch: str, smoke: bool, dtype_name: str):
    """A ModelPatcher of the architecture with random weights, dtypes chosen as
    comfy.sd.load_diffusion_model_state_dict chooses them."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as sm

    cls = {"sd15": sm.SD15, "sdxl": sm.SDXL, "sd3": sm.SD3}[arch]
    config = cls((TINY if smoke else UNET)[arch])
    load_device = mm.get_torch_device()
    if dtype_name == "auto":
        unet_dtype = mm.unet_dtype(
            model_params=2_000_000_000, supported_dtypes=list(config.supported_inference_dtypes)
        )
    else:
        unet_dtype = _dtype(dtype_name)
    manual_cast = mm.unet_manual_cast(unet_dtype, load_device, config.supported_inference_dtypes)
    config.set_inference_dtype(unet_dtype, manual_cast)
    model = config.get_model({}, "")
    model = model.to(mm.unet_offload_device())
    params = init_random_(model.diffusion_model)
    patcher = comfy.model_patcher.ModelPatcher(
        model, load_device=load_device, offload_device=mm.unet_offload_device()
    )
    return patcher, params, str(unet_dtype).replace("torch.", ""), str(manual_cast)


def build_vae(latent_channels: int):
    """comfy.sd.VAE from a random state dict of the SD VAE's shapes (SD3: 16 latent channels,
    no quant convs, as in its checkpoint)."""
    import comfy.sd
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL

    ddconfig = {
        "double_z": True,
        "z_channels": latent_channels,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 2, 4, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    with torch.device("meta"):
        shapes = AutoencoderKL(ddconfig=ddconfig, embed_dim=latent_channels).state_dict()
    gen = torch.Generator().manual_seed(1)
    sd = {}
    for k, v in shapes.items():
        if latent_channels == 16 and "quant_conv" in k:
            continue
        if v.ndim >= 2:
            sd[k] = torch.randn(v.shape, generator=gen) * (0.5 / math.sqrt(v[0].numel()))
        elif k.endswith("bias"):
            sd[k] = torch.zeros(v.shape)
        else:
            sd[k] = torch.ones(v.shape)
    return comfy.sd.VAE(sd=sd)


def conditioning(arch: str, size: int, seed: int):
    import torch

    (shape, pooled) = COND[arch]
    gen = torch.Generator().manual_seed(seed)
    extra = {}
    if pooled:
        extra["pooled_output"] = torch.randn((1, pooled), generator=gen)
    if arch == "sdxl":
        extra.update(width=size, height=size, target_width=size, target_height=size)
    return [[torch.randn(shape, generator=gen), extra]]


class Meter:
    """Per-phase wall time, peak memory and progress-bar step reports."""

    def __init__(self, device: str) -> None:
        import comfy.utils

        self.device = device
        self.events: list[float] = []
        comfy.utils.set_progress_bar_global_hook(self._hook)

    def _hook(self, value, total, preview, node_id=None):
        self.events.append(time.perf_counter())

    def rss_mb(self) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def start(self) -> None:
        import torch

        self.events = []
        self.base_mb = self.rss_mb() if self.device == "cpu" else None
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base_mb = torch.cuda.memory_allocated() / 2**20
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.t0
        if self.device == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = next(
                int(line.split()[1]) / 1024
                for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")
            )
        ev = self.events
        step = (ev[-1] - ev[0]) / (len(ev) - 1) if len(ev) >= 2 else None
        return {
            "seconds": seconds,
            "step_seconds": step,
            "reports": len(ev),
            "peak_mb": peak,
            "start_mb": self.base_mb,
        }


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def skipped(reason: str) -> dict:
    nan = float("nan")
    return {"seconds": nan, "step_seconds": None, "reports": 0, "peak_mb": nan, "skipped": reason}


def run_child(args) -> dict:
    from .comfy_inproc import boot

    boot(args.device)
    import torch

    if args.device == "cpu":
        torch.set_flush_denormal(True)
    from comfy_extras.nodes_train import TrainLoraNode

    from comfy_papa.core.settings import FinetuneSettings
    from comfy_papa.feedback import Feedback
    from comfy_papa.host.rounds import finetune
    from comfy_papa.host.sampling import sample_candidates
    from comfy_papa.profile.store import Profile

    arch = args.child
    cfg = json.loads(args.config)
    meter = Meter(args.device)
    out: dict = {"model": arch, "config": cfg}

    meter.start()
    model, params, unet_dtype, manual_cast = build_model(arch, args.smoke, args.dtype)
    latent_channels = 16 if arch == "sd3" else 4
    vae = build_vae(latent_channels)
    out["build"] = meter.stop()
    out["params"] = params
    out["unet_dtype"] = unet_dtype
    out["manual_cast_dtype"] = manual_cast
    out["vae_dtype"] = str(vae.vae_dtype).replace("torch.", "")

    size, n = cfg["size"], cfg["candidates"]
    positive = conditioning(arch, size, 1)
    negative = conditioning(arch, size, 2)
    latent = {"samples": torch.zeros((1, latent_channels, size // 8, size // 8))}
    sampler, scheduler = "euler", "simple" if arch == "sd3" else "normal"

    defaults = FinetuneSettings()
    ft_steps = args.ft_steps or cfg.get("ft_steps", defaults.steps)
    ft_timesteps = cfg.get("ft_timesteps", defaults.timesteps_per_sample)
    settings = FinetuneSettings(
        steps=ft_steps,
        timesteps_per_sample=ft_timesteps,
        gradient_checkpointing=args.checkpointing,
    )
    out["train_settings"] = settings.as_dict()
    out["default_ft_steps"] = defaults.steps

    with torch.inference_mode(), tempfile.TemporaryDirectory() as tmp:
        if args.warmup:  # loads the model on the GPU and warms kernels: steady-state rounds
            meter.start()
            sample_candidates(
                model, positive, negative, latent, 1, 0, 1, cfg["cfg"], sampler, scheduler
            )
            out["warmup"] = meter.stop()

        meter.start()
        samples, cands = sample_candidates(
            model,
            positive,
            negative,
            latent,
            n,
            seed=0,
            steps=cfg["steps"],
            cfg=cfg["cfg"],
            sampler_name=sampler,
            scheduler=scheduler,
        )
        out["sample"] = meter.stop()

        meter.start()
        images = vae.decode(samples["samples"])
        out["decode"] = meter.stop()
        out["decode"]["image_shape"] = list(images.shape)
        del images

        labels = [1.0 if i % 2 == 0 else -1.0 for i in range(n)]
        # Training through weight wrappers keeps every patched weight for backward: SD1.5 on CPU
        # rose ~2.7x its weight bytes above the loaded model. Skip rather than push a shared
        # machine into the OOM killer.
        weight_mb = params * torch.finfo(torch.float32).bits / 8 / 2**20
        need_mb = 3 * weight_mb + 1024
        if args.device == "cpu" and mem_available_mb() < need_mb:
            reason = (
                f"needs ~{need_mb:.0f} MB more RAM (3x the fp32 weights + 1 GB), "
                f"{mem_available_mb():.0f} MB available"
            )
            for key in ("papa", "epapa", "trainlora"):
                out[key] = skipped(reason)
            return out
        for method in ("PAPA", "EPAPA"):
            fb = Feedback(cands.latents, labels, list(cands.ids), positive)
            profile = Profile.open(Path(tmp), f"bench-{method.lower()}")
            s = FinetuneSettings(**{**settings.as_dict(), "method": method})
            meter.start()
            _m, _lora, stats = finetune(model, fb, profile, s)
            out[method.lower()] = meter.stop()
            out[method.lower()]["passes"] = stats["passes"]
            out[method.lower()]["loss_first"] = stats["loss_first"]
            out[method.lower()]["skipped_steps"] = stats["skipped_steps"]
            del _m, _lora

        # TrainLoraNode: the same forward+backward pairs per step, the same rank
        pairs = min(settings.batch_size, sum(1 for v in labels if v != 0)) * ft_timesteps
        lat = torch.cat([cands.latents] * ft_timesteps)[:pairs]
        if pairs == 1:
            lat = torch.cat([lat, lat])  # >= 2 latent dicts, else TrainLoraNode 0.3.75 fails
        tl_dtype = args.trainlora_dtype or ("fp32" if args.device == "cpu" else "bf16")
        meter.start()
        TrainLoraNode.execute(
            model=[model],
            latents=[{"samples": lat[i : i + 1]} for i in range(len(lat))],
            positive=[positive],
            batch_size=[pairs],
            steps=[ft_steps],
            grad_accumulation_steps=[1],
            learning_rate=[1e-4],
            rank=[settings.rank],
            optimizer=["AdamW"],
            loss_function=["MSE"],
            seed=[0],
            training_dtype=[tl_dtype],
            lora_dtype=[tl_dtype],
            algorithm=["LoRA"],
            gradient_checkpointing=[args.checkpointing],
            existing_lora=["[None]"],
        )
        out["trainlora"] = meter.stop()
        out["trainlora"]["pairs"] = pairs
        out["trainlora"]["training_dtype"] = tl_dtype
    return out


DT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def _fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


def summarise(r: dict) -> dict:
    """Round totals; `projected` ones extend a shortened fine-tune to the default step count
    (measured seconds + missing steps x measured seconds per step)."""
    s = {}
    missing = r["default_ft_steps"] - r["train_settings"]["steps"]
    for m in ("papa", "epapa"):
        s[f"round_{m}_s"] = r["sample"]["seconds"] + r["decode"]["seconds"] + r[m]["seconds"]
        step = r[m]["step_seconds"] or 0.0
        s[f"round_{m}_projected_s"] = s[f"round_{m}_s"] + max(missing, 0) * step
        peaks = [r[k]["peak_mb"] for k in ("sample", "decode", m)]
        s[f"round_{m}_peak_mb"] = max(v for v in peaks if not math.isnan(v))
    p, t = r["papa"]["step_seconds"], r["trainlora"]["step_seconds"]
    s["step_ratio"] = p / t if p and t else None
    s["peak_ratio"] = r["papa"]["peak_mb"] / r["trainlora"]["peak_mb"]
    return s


def print_table(rows: list[dict], device: str, settings: dict) -> None:
    print(f"\ndevice {device}; settings: {json.dumps(settings)}")
    head = (
        f"{'model':<6}{'params':>7}{'dtype':>6}{'N':>3}{'size':>6}{'st':>4}"
        f"{'sample s':>10}{'decode s':>10}{'PAPA s':>9}{'EPAPA s':>9}{'round s':>9}"
        f"{'proj. s':>9}{'peak MB':>9}{'PAPA s/st':>11}{'TLN s/st':>10}{'t ratio':>9}"
        f"{'PAPA MB':>9}{'TLN MB':>9}{'m ratio':>9}"
    )
    print(head)
    for r in rows:
        if "error" in r:
            print(f"{r['model']:<6}  failed: {r['error'][-300:]}")
            continue
        c, s = r["config"], r["summary"]
        dt = DT.get(r["unet_dtype"], r["unet_dtype"])
        print(
            f"{r['model']:<6}{r['params'] / 1e9:>6.2f}B{dt:>6}"
            f"{c['candidates']:>3}{c['size']:>6}{c['steps']:>4}"
            f"{r['sample']['seconds']:>10.1f}{r['decode']['seconds']:>10.1f}"
            f"{r['papa']['seconds']:>9.1f}{r['epapa']['seconds']:>9.1f}"
            f"{s['round_papa_s']:>9.1f}{s['round_papa_projected_s']:>9.1f}"
            f"{s['round_papa_peak_mb']:>9.0f}"
            f"{_fmt(r['papa']['step_seconds'], '.2f'):>11}"
            f"{_fmt(r['trainlora']['step_seconds'], '.2f'):>10}"
            f"{_fmt(s['step_ratio'], '.2f'):>9}"
            f"{r['papa']['peak_mb']:>9.0f}{r['trainlora']['peak_mb']:>9.0f}"
            f"{s['peak_ratio']:>9.2f}"
        )
    print(
        "round = sample + decode + PAPA fine-tune; proj. = the same with the fine-tune extended "
        "to the default 20 steps at the measured s/step; peak MB = the highest phase peak of "
        f"that round ({'torch.cuda.max_memory_allocated' if device == 'cuda' else 'peak RSS'}). "
        "s/st = seconds per fine-tune step (PAPA: pairs forward+backward plus a no-grad base "
        "pass; TLN = TrainLoraNode, the same pairs forward+backward)."
    )


def main() -> None:
    from ._entry import module_command, module_env

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of sd15,sdxl,sd3")
    ap.add_argument("--smoke", action="store_true", help="tiny models of the same classes")
    ap.add_argument(
        "--full", action="store_true", help="the issue's full sizes (default with --device cuda)"
    )
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--trainlora-dtype", default=None, choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing on")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument(
        "--ft-steps", type=int, default=None, help="fine-tune steps (default: 20, CPU: reduced)"
    )
    ap.add_argument("--out", default=None, help="JSON path")
    ap.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(run_child(args)))
        return

    if args.smoke:
        table, label = SMOKE, "smoke"
    elif args.full or args.device == "cuda":
        table, label = FULL, args.device
    else:
        table, label = CPU, args.device
    warmup = args.warmup and args.device == "cuda"
    settings = {
        "dtype": args.dtype,
        "trainlora_dtype": args.trainlora_dtype or ("fp32" if args.device == "cpu" else "bf16"),
        "gradient_checkpointing": args.checkpointing,
        "ft_steps_override": args.ft_steps,
        "warmup": warmup,
        "sampler": "euler",
        "scheduler": "normal (sd3: simple)",
    }
    rows = []
    t_all = time.perf_counter()
    for arch in args.models.split(","):
        cmd = [*module_command(__spec__.name), "--child", arch, "--device", args.device]
        cmd += ["--config", json.dumps(table[arch]), "--dtype", args.dtype]
        if args.trainlora_dtype:
            cmd += ["--trainlora-dtype", args.trainlora_dtype]
        if args.smoke:
            cmd.append("--smoke")
        if args.checkpointing:
            cmd.append("--checkpointing")
        if args.ft_steps:
            cmd += ["--ft-steps", str(args.ft_steps)]
        if not warmup:
            cmd.append("--no-warmup")
        print(f"[{arch}] {table[arch]}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=module_env())
        lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            rows.append({"model": arch, "config": table[arch], "error": proc.stderr[-4000:]})
            print(f"[{arch}] failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}", flush=True)
            continue
        r = json.loads(lines[-1][len("RESULT ") :])
        r["summary"] = summarise(r)
        r["wall_seconds"] = time.perf_counter() - t0
        rows.append(r)
        print(f"[{arch}] done in {r['wall_seconds']:.0f} s", flush=True)
    print_table(rows, args.device, settings)
    result = {
        "device": args.device,
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "sizes": label,
        "settings": settings,
        "wall_seconds": time.perf_counter() - t_all,
        "rows": rows,
    }
    if args.device == "cuda":
        import torch

        result["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    out = Path(args.out) if args.out else HERE / "results" / f"round_latency_{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
