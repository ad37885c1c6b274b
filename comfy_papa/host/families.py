"""Model families the PAPA Fine-tune node refuses, by the class of the host's model.

Proven in the real host (tests/host, tiny random checkpoints through the whole loop): SD1.5, SD2.x
v-prediction, SDXL and SD3 (MMDiT, rectified flow).

Flux is refused: no host test runs the loop on it. ComfyUI builds Flux's text encoder, T5-XXL
(~4.7B parameters), at full size from a fixed config whatever the checkpoint holds, and Flux's
loader has no T5-less variant (SD3's makes T5 optional), so a test checkpoint is gigabytes of
random weights; the Flux adapters, the export's key names and the guidance in training are
unchecked. Until a host test proves them, training one is refused here rather than left to produce
an adapter nobody has checked.

By class name through the MRO, so the host's subclasses (Flux2, Chroma) are refused with their
parent, and nothing here imports the host.
"""

from __future__ import annotations

# class name in comfy.model_base -> the family named in the message
REFUSED = {
    "Flux": "Flux",
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
            f"PAPA Fine-tune does not support {family} models yet (this MODEL is {name}): the "
            "loop is proven on SD1.5, SD2.x, SDXL (epsilon and v-prediction) and SD3 checkpoints "
            "only. Use one of those families."
        )
