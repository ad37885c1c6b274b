"""Model families the PAPA Fine-tune node refuses, by the class of the host's model.

Proven in the real host (tests/host): SD1.5 and SDXL (tiny random checkpoints through the whole
loop), epsilon and v-prediction. SD3 and Flux are flow models whose objective the core covers, but
no host test runs the loop on them yet: ComfyUI builds their text encoders (CLIP-G, T5-XXL) at
full size from fixed configs, so a test checkpoint is gigabytes of random weights (T5-XXL alone
~4.7B parameters), and the MMDiT / Flux adapters, the export's key names and Flux's guidance in
training are unchecked. Until a host test proves them, training one is refused here rather than
left to produce an adapter nobody has checked.

By class name through the MRO, so the host's subclasses (Flux2, Chroma) are refused with their
parent, and nothing here imports the host.
"""

from __future__ import annotations

# class name in comfy.model_base -> the family named in the message
REFUSED = {
    "Flux": "Flux",
    "SD3": "SD3 (MMDiT)",
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
            "loop is proven on SD1.5 and SDXL checkpoints (epsilon and v-prediction) only. "
            "Use an SD1.5- or SDXL-family checkpoint."
        )
