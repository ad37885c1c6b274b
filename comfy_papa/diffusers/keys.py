"""LoRA key names between ComfyUI (original LDM UNet names) and diffusers, by diffusers' converters.

Three LoRA layouts meet here, all with the same mathematics W' = W + (alpha / rank) up @ down:

- "comfy": ComfyUI's LORA_MODEL and the PAPA profile adapter, LDM module names,
  "diffusion_model.<ldm module>.lora_up.weight" / ".lora_down.weight" / ".alpha".
- "peft": what peft and diffusers hold, "<diffusers module>.lora_A.weight" (= down) and
  ".lora_B.weight" (= up); the scale lives in the LoraConfig, not in the keys.
- "kohya": "lora_unet_<diffusers module, dots as underscores>.lora_down.weight" / ".lora_up.weight"
  / ".alpha". Both hosts read it with their own converters (diffusers' `load_lora_weights`,
  ComfyUI's `model_lora_keys_unet`), so it is the interchange file.

The LDM <-> diffusers module map is diffusers' own `convert_ldm_unet_checkpoint`, run on tagged
placeholder tensors. Going the other way needs LDM names to feed it: `_ldm_candidate` proposes one
per diffusers key from the UNet's block layout, and only proposals that diffusers' converter maps
back onto exactly that key are kept, so a wrong proposal can never produce a wrong name.
"""

from __future__ import annotations

import re

import torch
from diffusers.loaders.single_file_utils import (
    DIFFUSERS_TO_LDM_MAPPING,
    LDM_UNET_KEY,
    convert_ldm_unet_checkpoint,
)
from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya

COMFY_PREFIX = "diffusion_model."
KOHYA_PREFIX = "lora_unet_"
# Resnet parameter names, LDM -> diffusers, as update_unet_resnet_ldm_to_diffusers renames them.
_RESNET_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


class KeyMapError(ValueError):
    pass


def _ldm_candidate(key: str, per_block: int, up_has_attn: dict[int, bool]) -> str | None:
    """A proposed LDM name for one diffusers UNet parameter (checked by the caller)."""
    basic = DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"]
    if key in basic:
        return basic[key]
    m = re.match(
        r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)"
        r"\.(\d+)\.(.+)",
        key,
    )
    if m:
        side, b, part, j, rest = (
            m.group(1),
            int(m.group(2)),
            m.group(3),
            int(m.group(4)),
            m.group(5),
        )
        if side == "down_blocks":
            i = 1 + b * (per_block + 1) + j
            if part == "downsamplers":
                return f"input_blocks.{1 + b * (per_block + 1) + per_block}.0.op." + rest[5:]
            prefix = f"input_blocks.{i}.{0 if part == 'resnets' else 1}"
        else:
            i = b * (per_block + 1) + j
            if part == "upsamplers":
                slot = 2 if up_has_attn.get(b) else 1
                return f"output_blocks.{b * (per_block + 1) + per_block}.{slot}.conv." + rest[5:]
            prefix = f"output_blocks.{i}.{0 if part == 'resnets' else 1}"
        return prefix + "." + (_resnet_rest(rest) if part == "resnets" else rest)
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key)
    if m:
        j = int(m.group(2))
        if m.group(1) == "resnets":
            return f"middle_block.{2 * j}." + _resnet_rest(m.group(3))
        return f"middle_block.{2 * j + 1}." + m.group(3)
    return None


def _resnet_rest(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET_LDM.get(head, head)}.{tail}"


def ldm_to_diffusers_map(unet: torch.nn.Module) -> dict[str, str]:
    """LDM parameter name -> diffusers parameter name for every parameter of an SD-style
    UNet2DConditionModel, as diffusers' `convert_ldm_unet_checkpoint` converts them.

    Raises KeyMapError when some parameter has no LDM name (not an SD-architecture UNet).
    """
    config = dict(getattr(unet, "config", {}))
    per_block = config.get("layers_per_block")
    sd_like = config.get("cross_attention_dim") is not None and "up_block_types" in config
    if not isinstance(per_block, int) or not sd_like:
        raise KeyMapError(
            f"{type(unet).__name__} has no SD-style UNet config (layers_per_block={per_block!r}); "
            "only UNet2DConditionModel checkpoints convertible from the original LDM layout can "
            "share adapters with ComfyUI."
        )
    up_has_attn = {i: "CrossAttn" in t for i, t in enumerate(config["up_block_types"])}
    keys = [k for k in _base_state_keys(unet)]
    candidates = {k: _ldm_candidate(k, per_block, up_has_attn) for k in keys}
    tagged = {
        LDM_UNET_KEY + ldm: torch.tensor([float(i)])
        for i, (k, ldm) in enumerate(candidates.items())
        if ldm is not None
    }
    converted = convert_ldm_unet_checkpoint(tagged, config)
    out = {}
    for diffusers_key, tag in converted.items():
        if tag is None:
            continue
        source = keys[int(tag.item())]
        if source == diffusers_key:
            out[candidates[source]] = diffusers_key
    missing = sorted(set(keys) - set(out.values()))
    if missing:
        raise KeyMapError(
            f"diffusers' LDM converter gives no original name for {len(missing)} UNet parameters "
            f"(e.g. {missing[:3]}); this UNet cannot share adapters with ComfyUI. Use the kohya "
            "export, which needs no LDM names."
        )
    return out


def _base_state_keys(unet: torch.nn.Module) -> list[str]:
    """The UNet's own parameter names, without peft's wrapping (base_layer, lora_A/B)."""
    out = []
    for k in unet.state_dict():
        if ".lora_" in k:
            continue
        out.append(k.replace(".base_layer.", "."))
    return out


def module_map(param_map: dict[str, str]) -> dict[str, str]:
    """Parameter-name map -> module-name map (the '.weight' entries)."""
    return {
        k[: -len(".weight")]: v[: -len(".weight")]
        for k, v in param_map.items()
        if k.endswith(".weight")
    }


def comfy_to_peft(
    comfy_sd: dict[str, torch.Tensor],
    ldm_to_diffusers: dict[str, str],
    weight_shapes: dict[str, torch.Size],
):
    """ComfyUI layout -> (peft state dict with 'unet.' prefix, {diffusers module: alpha}).

    ComfyUI keeps a convolution's LoRA as matrices (down [rank, in * kh * kw], up [out, rank]);
    peft's lora_A / lora_B are convolutions shaped after the base weight (`weight_shapes`)."""
    modules = module_map(ldm_to_diffusers)
    peft_sd, alphas = {}, {}
    names = sorted(
        {k[: -len(".lora_up.weight")] for k in comfy_sd if k.endswith(".lora_up.weight")}
    )
    for name in names:
        ldm = name[len(COMFY_PREFIX) :] if name.startswith(COMFY_PREFIX) else name
        if ldm not in modules:
            raise KeyMapError(
                f"LoRA module {name!r} has no diffusers counterpart in this UNet; the LoRA was "
                "made for another architecture."
            )
        d = modules[ldm]
        shape = weight_shapes[d]
        down, up = comfy_sd[f"{name}.lora_down.weight"], comfy_sd[f"{name}.lora_up.weight"]
        rank = down.shape[0]
        peft_sd[f"unet.{d}.lora_A.weight"] = down.reshape(rank, *shape[1:])
        peft_sd[f"unet.{d}.lora_B.weight"] = up.reshape(shape[0], rank, *[1] * (len(shape) - 2))
        alpha = comfy_sd.get(f"{name}.alpha")
        alphas[d] = (
            float(alpha)
            if alpha is not None
            else float(comfy_sd[f"{name}.lora_down.weight"].shape[0])
        )
    return peft_sd, alphas


def peft_to_kohya(
    peft_sd: dict[str, torch.Tensor], alphas: dict[str, float]
) -> dict[str, torch.Tensor]:
    """peft layout ('unet.<module>.lora_A.weight') -> kohya layout with the real alphas.

    Names come from diffusers' `convert_state_dict_to_kohya`; it writes alpha = rank (scale 1), so
    the alphas are set afterwards.
    """
    kohya = convert_state_dict_to_kohya(dict(peft_sd))
    by_kohya_name = {KOHYA_PREFIX + d.replace(".", "_"): a for d, a in alphas.items()}
    for key in list(kohya):
        if key.endswith(".alpha"):
            name = key[: -len(".alpha")]
            if name not in by_kohya_name:
                raise KeyMapError(f"kohya conversion produced an unexpected module {name!r}.")
            kohya[key] = torch.tensor(by_kohya_name[name])
    return kohya


def comfy_to_kohya(
    comfy_sd: dict[str, torch.Tensor], unet: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """A ComfyUI / PAPA LoRA as a kohya LoRA for `pipe.load_lora_weights`."""
    shapes = {k[: -len(".weight")]: v.shape for k, v in unet.state_dict().items()}
    shapes.update({k.replace(".base_layer", ""): v for k, v in shapes.items()})
    return peft_to_kohya(*comfy_to_peft(comfy_sd, ldm_to_diffusers_map(unet), shapes))


def is_comfy_layout(sd: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith(COMFY_PREFIX) and k.endswith(".lora_up.weight") for k in sd)
