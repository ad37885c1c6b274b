"""Trainable LoRA adapters on a ComfyUI MODEL (comfy.weight_adapter), and applying trained ones.

PAPA output: the adapter is baked in with `add_patches` (no per-step cost). EPAPA output: the
adapters sit behind a gate that a keyed APPLY_MODEL wrapper opens only while sigma >= the cut, so
the base model denoises below it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import comfy.patcher_extension
import comfy.sd
import torch
from comfy.weight_adapter import adapter_maps

from .models import PERSONALISED_KEY

WRAPPER_KEY = "comfy_papa.epapa_gate"
ADAPTER_SUFFIXES = (".lora_up.weight", ".lora_down.weight", ".alpha")
# Test-only: leave the first N trainable adapters unattached (no weight wrapper), as a host that
# skips a layer's weight functions would; training must then fail, not save them untrained.
TEST_UNATTACHED_ENV = "COMFY_PAPA_TEST_UNATTACHED"


class Gate:
    """A switch shared by all gated adapters of one MODEL; records the sigmas it saw."""

    def __init__(self, sigma_cut: float | None = None) -> None:
        self.on = True
        self.sigma_cut = sigma_cut
        self.trace: list[tuple[float, bool]] = []

    def on_model_patcher_clone(self) -> Gate:
        return self  # clones of a personalised MODEL share the gate with its wrappers


class GatedAdapter(torch.nn.Module):
    """weight -> inner(weight) while the gate is on, else the base weight unchanged."""

    def __init__(self, inner: torch.nn.Module, gate: Gate) -> None:
        super().__init__()
        self.inner = inner
        self.gate = gate
        self.calls = 0  # how often the host applied this wrapper (diagnostics)

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(w) if self.gate.on else w

    def passive_memory_usage(self) -> int:
        return self.inner.passive_memory_usage()

    def move_to(self, device) -> int:
        self.inner.to(device)
        return self.passive_memory_usage()


@dataclass
class AdapterSet:
    """The trainable adapters attached to one cloned MODEL."""

    gate: Gate
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)
    rank: int = 8
    alpha: float = 8.0
    wrappers: dict[str, GatedAdapter] = field(default_factory=dict)

    def calls(self, name: str) -> int:
        """How often the host applied module `name`'s adapter (0: never, or not attached)."""
        wrapper = self.wrappers.get(name)
        return wrapper.calls if wrapper is not None else 0

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        return {
            f"{name}.{pname}": p
            for name, mod in sorted(self.modules.items())
            for pname, p in mod.named_parameters()
            if p.requires_grad
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        """ComfyUI's LORA_MODEL layout: "{module}.lora_up.weight", ".lora_down.weight", ".alpha"."""
        out = {}
        for name, mod in sorted(self.modules.items()):
            out[f"{name}.lora_up.weight"] = mod.lora_up.weight.detach().float().cpu().clone()
            out[f"{name}.lora_down.weight"] = mod.lora_down.weight.detach().float().cpu().clone()
            out[f"{name}.alpha"] = torch.tensor(float(self.alpha))
        return out


class _Passthrough(torch.nn.Module):
    """Identity weight function. Having any weight function makes ComfyUI cast a fresh copy of
    the weight at each forward, so weights loaded under inference mode can join the autograd
    graph ("Inference tensors cannot be saved for backward")."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def passive_memory_usage(self) -> int:
        return 0

    def move_to(self, device) -> int:
        return 0


def adaptable_modules(model) -> list[tuple[str, torch.nn.Module]]:
    """Modules of the diffusion model whose weight ComfyUI can wrap (matrices and convolutions)."""
    return [
        (name, m)
        for name, m in model.model.named_modules()
        if name.startswith("diffusion_model.")
        and hasattr(m, "weight_function")
        and getattr(m, "weight", None) is not None
        and m.weight.ndim >= 2
    ]


def init_like_peft(train: torch.nn.Module) -> None:
    """down ~ kaiming-uniform over the layer's fan-in (a = sqrt(5), torch's Linear default), up = 0:
    peft's LoRA initialisation.

    ComfyUI's `create_train` does the opposite (up random over fan-in = rank, down zero). Under
    Adam the first steps move the zero factor by ~lr per entry, so the weight change per step
    scales with the random factor's size: ComfyUI's start moves sqrt(fan_in / rank) times further
    (1.7x at fan-in 27 to ~12x at 1152), and one learning rate meant something else on every
    layer, model size and backend. With peft's start it means the same as in diffusers.
    """
    with torch.no_grad():
        torch.nn.init.kaiming_uniform_(train.lora_down.weight, a=5**0.5)
        train.lora_up.weight.zero_()


def attach_trainable(
    mp, rank: int, alpha: float, existing: dict[str, torch.Tensor] | None, seed: int
) -> AdapterSet:
    """Add one LoRA per adaptable module to the clone `mp` (fresh, or continued from `existing`).

    Fresh adapters start as peft's do (`init_like_peft`, under a fixed seed): up zero, so round 1
    starts exactly at the base model.
    """
    gate = Gate()
    aset = AdapterSet(gate, rank=rank, alpha=alpha)
    lora = adapter_maps["LoRA"]
    unattached = int(os.environ.get(TEST_UNATTACHED_ENV, "0") or 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, (name, m) in enumerate(adaptable_modules(mp)):
            train = lora.create_train(m.weight, rank=rank, alpha=alpha)
            if existing:
                up, down = f"{name}.lora_up.weight", f"{name}.lora_down.weight"
                if up not in existing or existing[up].shape != train.lora_up.weight.shape:
                    raise ValueError(
                        f"The profile's adapter does not fit this model at {name} (saved with "
                        "another rank or model). Keep the rank the profile was made with, or reset "
                        "the profile."
                    )
                with torch.no_grad():
                    train.lora_up.weight.copy_(existing[up])
                    train.lora_down.weight.copy_(existing[down])
            else:
                init_like_peft(train)
            train = train.to(torch.float32)
            aset.modules[name] = train
            if i < unattached:
                continue
            aset.wrappers[name] = GatedAdapter(train, gate)
            mp.add_weight_wrapper(f"{name}.weight", aset.wrappers[name])
        adapted = set(aset.wrappers)
        for name, m in mp.model.named_modules():
            if not hasattr(m, "weight_function"):
                continue
            if getattr(m, "weight", None) is not None and name not in adapted:
                mp.add_weight_wrapper(f"{name}.weight", _Passthrough())
            if getattr(m, "bias", None) is not None:
                mp.add_weight_wrapper(f"{name}.bias", _Passthrough())
    return aset


def mark_personalised(mp, profile: str, round_: int, method: str) -> None:
    mp.set_attachments(PERSONALISED_KEY, {"profile": profile, "round": round_, "method": method})


def apply_baked(model, lora_sd: dict[str, torch.Tensor], strength: float = 1.0):
    """PAPA: bake the adapter in as ComfyUI patches, as LoraLoader does (no per-step cost)."""
    patched, _ = comfy.sd.load_lora_for_models(model, None, lora_sd, strength, 0.0)
    return patched


def apply_gated(model, lora_sd: dict[str, torch.Tensor], sigma_cut: float, strength: float = 1.0):
    """EPAPA: adapters on while sigma >= sigma_cut, the base model below (keyed wrapper)."""
    mp = model.clone()
    gate = Gate(sigma_cut)
    lora = adapter_maps["LoRA"]
    names = sorted({k[: -len(s)] for k in lora_sd for s in ADAPTER_SUFFIXES if k.endswith(s)})
    for name in names:
        loaded = lora.load(name, lora_sd, float(lora_sd[f"{name}.alpha"]) * strength, None)
        if loaded is None:
            continue
        mp.add_weight_wrapper(
            f"{name}.weight", GatedAdapter(loaded.to_train().requires_grad_(False), gate)
        )

    def gate_wrapper(executor, x, t, *args, **kwargs):
        gate.on = bool(t.max().item() >= sigma_cut)
        if len(gate.trace) < 10_000:
            gate.trace.append((float(t.max().item()), gate.on))
        try:
            return executor(x, t, *args, **kwargs)
        finally:
            gate.on = True

    mp.add_wrapper_with_key(
        comfy.patcher_extension.WrappersMP.APPLY_MODEL, WRAPPER_KEY, gate_wrapper
    )
    mp.set_attachments("comfy_papa.gate", gate)
    return mp
