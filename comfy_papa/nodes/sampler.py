"""PAPA Candidate Sampler: N candidates from the current (personalised) model."""

import comfy.samplers
from comfy_api.latest import io

from ..host.sampling import sample_candidates
from .types import CATEGORY, Candidates


class CandidateSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPACandidateSampler",
            display_name="PAPA Candidate Sampler",
            category=CATEGORY,
            description="Sample N candidates for the artist to judge. Candidate i uses seed + i, "
            "so any one can be remade.",
            inputs=[
                io.Model.Input("model", tooltip="The current model (base or personalised)."),
                io.Conditioning.Input("positive", tooltip="Prompt the candidates share."),
                io.Conditioning.Input("negative", tooltip="Negative prompt."),
                io.Latent.Input(
                    "latent", tooltip="An empty latent of the wanted size (its first item is used)."
                ),
                io.Int.Input(
                    "count", default=8, min=1, max=64, tooltip="Number of candidates per round."
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the first candidate; candidate i uses seed + i (wrapping "
                    "past the maximum).",
                ),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input(
                    "cfg",
                    default=7.0,
                    min=0.0,
                    max=100.0,
                    step=0.1,
                    round=0.01,
                    tooltip="Classifier-free guidance scale.",
                ),
                io.Combo.Input(
                    "sampler_name", options=comfy.samplers.SAMPLER_NAMES, tooltip="Sampler."
                ),
                io.Combo.Input(
                    "scheduler", options=comfy.samplers.SCHEDULER_NAMES, tooltip="Scheduler."
                ),
            ],
            outputs=[
                io.Latent.Output("candidates", tooltip="The N sampled latents, one batch."),
                Candidates.Output(
                    "metadata", tooltip="Per-candidate seed, settings and model fingerprint."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, model, positive, negative, latent, count, seed, steps, cfg, sampler_name, scheduler
    ) -> io.NodeOutput:
        out, cands = sample_candidates(
            model, positive, negative, latent, count, seed, steps, cfg, sampler_name, scheduler
        )
        return io.NodeOutput(out, cands)
