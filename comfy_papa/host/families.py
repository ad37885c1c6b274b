"""Model families the PAPA Fine-tune node refuses, by the class of the host's model.

Proven in the real host (tests/host, tiny random checkpoints through the whole loop): SD1.5, SD2.x
v-prediction, SDXL and SD3 (MMDiT, rectified flow; CLIP-L + CLIP-G, T5 optional).

Flux is refused, for reasons measured on the pinned ComfyUI 0.3.75 (2 CPU cores, issue 16):

- Training fails in the host. Flux's blocks add their residuals in place after a LayerNorm has
  saved its input for the backward pass (`x += ...` in SingleStreamBlock, `img += ...` /
  `txt += ...` in DoubleStreamBlock, comfy/ldm/flux/layers.py), so backward through adapters on a
  ComfyUI Flux model raises "one of the variables needed for gradient computation has been
  modified by an inplace operation". Cloning saved tensors (torch.autograd.graph.
  saved_tensors_hooks) made it train in an experiment (all 69 adapters of a 2-block Flux got
  gradients), at the cost of a copy of every saved activation and weight, which is not in the
  pack.
- No host test can run the loop cheaply. ComfyUI's detector fixes Flux's width (24 heads of
  sum(axes_dim) = 128, hidden 3072), so the smallest Flux it loads (1 double + 1 single block) has
  545M parameters: one forward + backward of a batch of 2 4x4 latents through the adapters took
  27-35 s (peak 10.3 GB RSS). Its text encoder, T5-XXL, is built at full size from a fixed config
  (4.76B parameters; Flux's loader, unlike SD3's, has no T5-less variant): 4.8 GB even as random
  fp8, ~60 s to generate, ~2-2.4 s per layer (~50-60 s) to encode one 256-token prompt. A loop
  test would need ~15 GB and well over ten minutes per run.

Until a host test proves the Flux adapters, the export's key names and the guidance in training,
training one is refused here rather than left to crash or produce an adapter nobody has checked.

By class name through the MRO, so the host's subclasses (Flux2, Chroma) are refused with their
parent, and nothing here imports the host.
"""

from __future__ import annotations

# class name in comfy.model_base -> the family named in the message
REFUSED = {
    "Flux": "Flux",
}
# family -> why, in the message
REASONS = {
    "Flux": (
        "ComfyUI's Flux blocks add their residuals in place, which breaks training through "
        "adapters, and no test proves the loop on Flux"
    ),
}


def unsupported_family(model) -> str | None:
    """The refused family of a ComfyUI MODEL (a ModelPatcher) or of its inner model, else None."""
    inner = getattr(model, "model", model)
    for cls in type(inner).__mro__:
        if cls.__name__ in REFUSED:
            return REFUSED[cls.__name__]
    return None


def refuse_unsupported_family(model) -> None:
    family = unsupported_family(model)
    if family is not None:
        name = type(getattr(model, "model", model)).__name__
        raise ValueError(
            f"PAPA Fine-tune does not support {family} models yet (this MODEL is {name}): "
            f"{REASONS[family]}. The loop is proven on SD1.5, SD2.x, SDXL (epsilon and "
            "v-prediction) and SD3 checkpoints; use one of those families."
        )
