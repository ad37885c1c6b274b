"""The digits demo nodes: a loader that needs no download, and a simulated user that labels."""

from comfy_api.latest import io, ui

from ..digits import rules
from ..digits.classifier import classify
from ..digits.model import empty_conditioning, empty_latent, load_digits_model, pixel_space_vae
from ..feedback import Feedback as FeedbackData
from .types import Candidates, Feedback

CATEGORY = "PAPA/digits"


class DigitsDemoLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPADigitsDemoLoader",
            display_name="PAPA Digits Demo Loader",
            category=CATEGORY,
            description="The pack's embedded demo model: a small pixel-space diffusion model of "
            "32x32 handwritten digits (trained on MNIST digits), its pixel-space VAE, the empty "
            "conditioning it was trained with and an empty 32x32 latent. No download needed.",
            inputs=[
                io.Int.Input(
                    "batch_size",
                    default=1,
                    min=1,
                    max=64,
                    tooltip="Batch size of the empty latent (the candidate sampler uses its "
                    "first item).",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "MODEL", tooltip="The digits diffusion model (v-prediction, DDPM schedule)."
                ),
                io.Vae.Output("VAE", tooltip="Pixel-space VAE: latent [-1, 1] <-> IMAGE [0, 1]."),
                io.Conditioning.Output(
                    "CONDITIONING",
                    tooltip="The empty conditioning; use it as both positive and negative (cfg 1).",
                ),
                io.Latent.Output("LATENT", tooltip="An empty 32x32 latent of the model's size."),
            ],
        )

    @classmethod
    def execute(cls, batch_size) -> io.NodeOutput:
        model, vae = load_digits_model(), pixel_space_vae()
        return io.NodeOutput(model, vae, empty_conditioning(), empty_latent(batch_size))


class SimulatedUser(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPASimulatedUser",
            display_name="PAPA Simulated User",
            category=CATEGORY,
            is_output_node=True,
            description="Labels candidates like an artist would, from a rule: liked (+1) when "
            "the digit classifier reads a preferred digit and/or the image meets a rule on its "
            "strokes, slant or size; disliked (-1) otherwise. Lets the loop run unattended.",
            inputs=[
                io.Image.Input("images", tooltip="The decoded candidates (VAE Decode output)."),
                Candidates.Input(
                    "candidates", tooltip="The candidate sampler's metadata for these images."
                ),
                io.String.Input(
                    "preferred_digits",
                    default="1,4,7,9",
                    tooltip="Digits the user likes, e.g. '1,4,7,9'. Empty: judge by the rule "
                    "alone.",
                ),
                io.Combo.Input(
                    "rule",
                    options=list(rules.RULES),
                    default="none",
                    tooltip="An optional rule on the image itself: stroke width, slant or size.",
                ),
                io.Float.Input(
                    "threshold",
                    default=0.0,
                    min=-90.0,
                    max=90.0,
                    step=0.1,
                    tooltip="The rule's threshold: stroke width in pixels, slant in degrees "
                    "(positive leans right) or size (bounding box) in pixels. 0 uses the rule's "
                    "default (width 2 px, slant +15 / 0 degrees, size 20 px).",
                ),
                io.Combo.Input(
                    "combine",
                    options=list(rules.COMBINE),
                    default="and",
                    tooltip="With both digits and a rule: like when both hold (and) or when "
                    "either does (or).",
                ),
            ],
            outputs=[
                Feedback.Output("feedback", tooltip="The labels, ready for PAPA Fine-tune."),
                io.String.Output("summary", tooltip="What the simulated user saw and decided."),
            ],
        )

    @classmethod
    def execute(
        cls, images, candidates, preferred_digits, rule, threshold, combine
    ) -> io.NodeOutput:
        if images.shape[0] != len(candidates):
            raise ValueError(
                f"PAPA Simulated User: {images.shape[0]} images but {len(candidates)} candidates; "
                "connect the VAE Decode of these same candidates."
            )
        fb, summary = simulate(images, candidates, preferred_digits, rule, threshold, combine)
        return io.NodeOutput(fb, summary, ui=ui.PreviewText(summary))


def simulate(images, candidates, preferred_digits, rule, threshold, combine):
    """Classify, apply the rule, and build the round's Feedback and a one-line-per-image summary."""
    preferred = rules.parse_digits(preferred_digits)
    thr = None if threshold == 0.0 else float(threshold)
    probs = classify(images)
    conf, digits = probs.max(dim=-1)
    gray = images.float().mean(dim=-1).cpu()
    labels = [
        rules.label(gray[i], int(digits[i]), preferred, rule, thr, combine)
        for i in range(len(candidates))
    ]
    measures = (
        [rules.measure(rule, gray[i]) for i in range(len(candidates))]
        if rules.RULES[rule] is not None
        else []
    )
    extra = {
        "digits": [int(d) for d in digits],
        "confidence": [round(float(c), 4) for c in conf],
        "rule": rule,
        "rule_values": [round(m, 3) for m in measures],
        "preferred_digits": sorted(preferred),
    }
    fb = FeedbackData(
        latents=candidates.latents,
        labels=labels,
        candidate_ids=list(candidates.ids),
        positive=candidates.positive,
        model_fingerprint=candidates.model_fingerprint,
        extra=extra,
    )
    lines = [f"{sum(v > 0 for v in labels)} liked, {sum(v < 0 for v in labels)} disliked"]
    for i, cid in enumerate(candidates.ids):
        m = f" {rule} {measures[i]:.2f}" if measures else ""
        verdict = "like" if labels[i] > 0 else "dislike"
        lines.append(f"{cid}: digit {int(digits[i])} ({float(conf[i]):.2f}){m} -> {verdict}")
    return fb, "\n".join(lines)
