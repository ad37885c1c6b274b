"""PAPA's LoRA on a diffusers UNet through peft, read and written in the profile's ComfyUI layout.

The adapter covers every Linear and Conv2d of the UNet, the set ComfyUI's fine-tune adapts
(`host.adapters.adaptable_modules`: every matrix and convolution of the diffusion model), with the
same scale alpha / rank. peft's lora_A is ComfyUI's lora_down and lora_B its lora_up; a fresh
adapter starts at the base model (peft: B = 0; ComfyUI: down = 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer

from .keys import COMFY_PREFIX, KeyMapError, ldm_to_diffusers_map, module_map

ADAPTER_NAME = "papa"
DIFFUSERS_PREFIX = "unet."


def adaptable_modules(unet: torch.nn.Module) -> list[str]:
    """Names of the UNet's Linear and Conv2d modules (before peft wraps them)."""
    return [
        name
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
        and not isinstance(m, BaseTunerLayer)
        and ".lora_" not in name
        and ".base_layer" not in name
    ]


def profile_names(unet: torch.nn.Module, modules: list[str]) -> tuple[dict[str, str], str]:
    """diffusers module -> profile module name, and the naming used.

    "ldm": ComfyUI's names ("diffusion_model.<LDM module>"), when diffusers' converter maps this
    UNet to the original layout, so ComfyUI and diffusers share the profile. Otherwise
    "diffusers": "unet.<diffusers module>", readable by this backend only.
    """
    try:
        to_ldm = {d: ldm for ldm, d in module_map(ldm_to_diffusers_map(unet)).items()}
    except KeyMapError:
        return {m: DIFFUSERS_PREFIX + m for m in modules}, "diffusers"
    return {m: COMFY_PREFIX + to_ldm[m] for m in modules}, "ldm"


@dataclass
class PeftAdapter:
    """The trainable adapter attached to one UNet."""

    unet: torch.nn.Module
    rank: int
    alpha: float
    names: dict[str, str] = field(default_factory=dict)  # diffusers module -> profile name
    naming: str = "diffusers"

    @classmethod
    def attach(cls, unet: torch.nn.Module, rank: int, alpha: float, seed: int = 0) -> PeftAdapter:
        if any(isinstance(m, BaseTunerLayer) for m in unet.modules()):
            raise ValueError(
                f"this UNet already carries a {ADAPTER_NAME!r} adapter; open the session on the "
                "base UNet (adapters must not stack)."
            )
        modules = adaptable_modules(unet)
        names, naming = profile_names(unet, modules)
        config = LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=modules, init_lora_weights=True
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if hasattr(unet, "add_adapter"):  # diffusers' PeftAdapterMixin (UNet2DConditionModel)
                unet.add_adapter(config, adapter_name=ADAPTER_NAME)
            else:  # UNet2DModel has no mixin: the peft call add_adapter makes
                inject_adapter_in_model(config, unet, adapter_name=ADAPTER_NAME)
        return cls(unet, rank, alpha, names, naming)

    def layers(self) -> dict[str, BaseTunerLayer]:
        return {name: self.unet.get_submodule(name) for name in self.names}

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        """Trainable tensors under the profile's names (as ComfyUI's AdapterSet.parameters)."""
        out = {}
        for name, layer in sorted(self.layers().items(), key=lambda kv: self.names[kv[0]]):
            p = self.names[name]
            out[f"{p}.lora_up.weight"] = layer.lora_B[ADAPTER_NAME].weight
            out[f"{p}.lora_down.weight"] = layer.lora_A[ADAPTER_NAME].weight
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The profile / ComfyUI LORA_MODEL layout: lora_up, lora_down and alpha per module, as
        matrices (ComfyUI flattens a convolution's down to [rank, in * kh * kw], up to
        [out, rank])."""
        out = {k: v.detach().float().cpu().flatten(1).clone() for k, v in self.parameters().items()}
        for p in self.names.values():
            out[f"{p}.alpha"] = torch.tensor(float(self.alpha))
        return dict(sorted(out.items()))

    def load(self, sd: dict[str, torch.Tensor]) -> None:
        """Copy a profile adapter (same layout) into the peft layers."""
        params = self.parameters()
        missing = sorted(set(params) - set(sd))
        if missing:
            raise ValueError(
                f"the profile's adapter does not fit this UNet (no {missing[0]!r} among "
                f"{len(sd)} tensors): it was trained on another architecture or naming. Open "
                "a new profile for this model."
            )
        with torch.no_grad():
            for k, p in params.items():
                if sd[k].numel() != p.numel() or sd[k].shape[0] != p.shape[0]:
                    raise ValueError(
                        f"the profile's adapter has {k} shaped {tuple(sd[k].shape)}, this UNet "
                        f"needs {tuple(p.shape)} (another rank or model?). Keep the rank the "
                        "profile was made with, or open a new profile."
                    )
                p.copy_(sd[k].reshape(p.shape))
        alphas = {float(sd[f"{n}.alpha"]) for n in self.names.values() if f"{n}.alpha" in sd}
        if alphas and alphas != {float(self.alpha)}:
            raise ValueError(
                f"the profile's adapter has alpha {sorted(alphas)}, this session {self.alpha}; "
                "open the session with the profile's alpha."
            )

    def enable(self, on: bool) -> None:
        for layer in self.layers().values():
            layer.enable_adapters(on)

    def peft_state_dict(self) -> dict[str, torch.Tensor]:
        """diffusers/peft layout with the 'unet.' prefix (lora_A = down, lora_B = up)."""
        out = {}
        for name, layer in self.layers().items():
            out[f"unet.{name}.lora_A.weight"] = layer.lora_A[ADAPTER_NAME].weight.detach().cpu()
            out[f"unet.{name}.lora_B.weight"] = layer.lora_B[ADAPTER_NAME].weight.detach().cpu()
        return out
