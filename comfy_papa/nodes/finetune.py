"""PAPA Fine-tune: one training round on the feedback, MODEL in, personalised MODEL out."""

import time

from comfy_api.latest import io

from ..host.families import refuse_unsupported_family
from ..host.rounds import finetune
from ..host.train import TrainSettings
from .plots import loss_curve_image, loss_curve_pil
from .types import CATEGORY, Feedback, Profile

_D = TrainSettings()


def _send_progress(profile: str):
    """Per step: the loss and the seconds since the round started (the panel's time estimate) to
    the picker panel; every few steps the loss curve as the node's progress preview. Without a
    running server (the node called from a script) nothing is sent."""
    from server import PromptServer

    start = time.perf_counter()

    def progress(step: int, steps: int, stats: dict, losses: list[float]):
        instance = getattr(PromptServer, "instance", None)
        if instance is not None:
            instance.send_sync(
                "papa.train_progress",
                {
                    "profile": profile,
                    "step": step,
                    "steps": steps,
                    "loss": stats["loss"],
                    "drift": stats.get("drift"),
                    "elapsed": round(time.perf_counter() - start, 2),
                },
            )
        if step == steps or step % 5 == 0:
            return ("JPEG", loss_curve_pil(losses, f"{profile}: step {step}/{steps}"), 384)
        return None

    return progress


class FineTune(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAFineTune",
            display_name="PAPA Fine-tune",
            category=CATEGORY,
            description="Train the profile's adapter on this round's likes and dislikes plus "
            "every earlier round (replay), on top of the BASE model, and output the "
            "personalised model. Each run is one round.",
            is_output_node=True,
            inputs=[
                io.Model.Input(
                    "model",
                    tooltip="The BASE model (the checkpoint's MODEL), never a personalised one.",
                ),
                Feedback.Input("feedback", tooltip="From PAPA Preference Picker or PAPA Labels."),
                Profile.Input("profile", tooltip="From PAPA Profile."),
                io.Combo.Input(
                    "method",
                    options=["PAPA", "EPAPA"],
                    tooltip="PAPA trains all timesteps; EPAPA only the noisy ones above the cut "
                    "and uses the base model below it when sampling (cheaper, keeps detail).",
                ),
                io.Float.Input(
                    "cut",
                    default=_D.cut,
                    min=0.0,
                    max=0.95,
                    step=0.05,
                    tooltip="EPAPA: fraction of the schedule (from the clean end) left to the "
                    "base model; 0.4 is the paper's k = 400 of 1000.",
                ),
                io.Int.Input(
                    "steps",
                    default=_D.steps,
                    min=1,
                    max=10000,
                    tooltip="Optimizer steps this round: how far one round may move the model "
                    "(with the learning rate). The default is tuned to learn in a few rounds "
                    "without collapsing onto one kind of image.",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=_D.learning_rate,
                    min=1e-7,
                    max=1e-1,
                    step=1e-5,
                    round=1e-7,
                    tooltip="AdamW learning rate of the adapter (peft-style LoRA start, so it "
                    "means the same on every model size and in diffusers).",
                ),
                io.Int.Input(
                    "rank",
                    default=_D.rank,
                    min=1,
                    max=256,
                    tooltip="LoRA rank; fixed for the life of a profile.",
                ),
                io.Float.Input(
                    "alpha",
                    default=_D.alpha,
                    min=0.1,
                    max=512.0,
                    step=0.1,
                    tooltip="LoRA alpha (scale = alpha / rank); stored with the profile.",
                ),
                io.Float.Input(
                    "c_pref",
                    default=_D.c_pref,
                    min=0.0,
                    max=100.0,
                    step=0.01,
                    tooltip="Weight of the preference term (likes pulled in, dislikes pushed "
                    "away, bounded, and never outweighing the likes).",
                ),
                io.Float.Input(
                    "c_sim",
                    default=_D.c_sim,
                    min=0.0,
                    max=100.0,
                    step=0.001,
                    tooltip="Pull towards the base model, relative to c_pref: higher keeps more "
                    "of the base model's quality and variety, lower follows your likes more "
                    "closely.",
                ),
                io.Int.Input(
                    "batch_size",
                    default=_D.batch_size,
                    min=1,
                    max=256,
                    tooltip="Replayed candidates per step.",
                ),
                io.Int.Input(
                    "timesteps_per_sample",
                    default=_D.timesteps_per_sample,
                    min=1,
                    max=64,
                    tooltip="Monte-Carlo timesteps per candidate per step.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFF,
                    tooltip="Seed of the training randomness (timesteps, noise, batches).",
                ),
                io.Boolean.Input(
                    "gradient_checkpointing",
                    default=False,
                    tooltip="Recompute activations in the backward pass: less memory, slower.",
                ),
                io.Float.Input(
                    "c_anchor",
                    default=_D.c_anchor,
                    min=0.0,
                    max=1000.0,
                    step=0.1,
                    optional=True,  # workflows saved before it existed still validate
                    tooltip="Keeps the model's picture at the noisiest steps near the base "
                    "model's (the steps that decide composition), so training cannot blow "
                    "the image out of range; 0 turns it off.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "personalised_model",
                    display_name="MODEL",
                    tooltip="The personalised model (this round).",
                ),
                io.LoraModel.Output("lora", tooltip="The adapter weights (LORA_MODEL)."),
                io.Image.Output("loss_curve", tooltip="Training loss of this round."),
            ],
        )

    @classmethod
    def execute(cls, model, feedback, profile, **kw) -> io.NodeOutput:
        refuse_unsupported_family(model)
        settings = TrainSettings(**kw)
        p = profile.open()
        out, lora, stats = finetune(model, feedback, p, settings, _send_progress(p.name))
        title = f"{p.name} round {stats['round']} ({settings.method})"
        summary = (
            f"{title}: loss {stats['loss_first']:.4g} -> {stats['loss_last']:.4g}, "
            f"{stats['replay']} labels in replay, {stats['seconds']:.1f}s"
        )
        return io.NodeOutput(
            out, lora, loss_curve_image(stats["losses"], title), ui={"text": [summary]}
        )
