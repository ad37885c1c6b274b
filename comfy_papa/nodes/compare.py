"""PAPA Before / After: the same seeds from the base model and the personalised one, one grid."""

import comfy.samplers
import torch
from comfy_api.latest import io, ui

from ..host.sampling import sample_seeds, seed_run
from .types import CATEGORY

GAP = 4  # pixels of mid-gray between the two rows and between the pictures
SHOWN_MIN = 128  # pictures smaller than this are shown enlarged on the node (see shown)


def grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """[1, H', W', C]: each [N, H, W, C] batch one row, GAP pixels of gray between the tiles."""
    n, h, w, c = rows[0].shape
    out = torch.full((1, len(rows) * (h + GAP) - GAP, n * (w + GAP) - GAP, c), 0.5)
    for r, images in enumerate(rows):
        for i in range(n):
            y, x = r * (h + GAP), i * (w + GAP)
            out[0, y : y + h, x : x + w] = images[i, ..., :c].float().cpu()
    return out


def shown(image: torch.Tensor, tile: int) -> torch.Tensor:
    """The grid as the node shows it: enlarged pixel-sharp by a whole factor when its pictures
    are under SHOWN_MIN pixels high. The canvas draws a node's picture at most at its own size,
    so the digits demo's 32 px digits would be specks; the IMAGE output keeps its size."""
    factor = -(-SHOWN_MIN // tile)
    if factor <= 1:
        return image
    return image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)


class BeforeAfter(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPABeforeAfter",
            display_name="PAPA Before / After",
            category=CATEGORY,
            description="Shows what the profile changed: the same seeds drawn by the original "
            "model (top row) and by the personalised model (bottom row), side by side.",
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "base_model", tooltip="The original model (the checkpoint's MODEL)."
                ),
                io.Model.Input(
                    "personalised_model",
                    tooltip="The personalised MODEL (from PAPA Fine-tune or PAPA Apply Profile).",
                ),
                io.Conditioning.Input("positive", tooltip="What to draw (both rows)."),
                io.Conditioning.Input("negative", tooltip="What to avoid (both rows)."),
                io.Latent.Input("latent", tooltip="The picture size (its first latent is used)."),
                io.Vae.Input("vae", tooltip="Turns the results into pictures."),
                io.Int.Input(
                    "count",
                    default=4,
                    min=1,
                    max=16,
                    tooltip="How many pictures per row (seed, seed + 1, ...).",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="The first picture's seed; the same seeds for both rows.",
                ),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input(
                    "cfg",
                    default=7.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="How closely the pictures follow the prompt (1.0 for the digits demo).",
                ),
                io.Combo.Input(
                    "sampler_name", options=comfy.samplers.SAMPLER_NAMES, tooltip="Sampler."
                ),
                io.Combo.Input(
                    "scheduler", options=comfy.samplers.SCHEDULER_NAMES, tooltip="Scheduler."
                ),
            ],
            outputs=[
                io.Image.Output(
                    "grid",
                    display_name="IMAGE",
                    tooltip="One picture: the original model's row above the personalised one.",
                )
            ],
        )

    @classmethod
    def execute(
        cls,
        base_model,
        personalised_model,
        positive,
        negative,
        latent,
        vae,
        count,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
    ) -> io.NodeOutput:
        seeds = seed_run(seed, count)
        rows = []
        for model in (base_model, personalised_model):
            samples = sample_seeds(
                model, positive, negative, latent, seeds, steps, cfg, sampler_name, scheduler
            )
            rows.append(vae.decode(samples))
        image = grid(rows)
        preview = shown(image, rows[0].shape[1])
        return io.NodeOutput(image, ui=ui.PreviewImage(preview, cls=cls))
