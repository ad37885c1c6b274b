"""PAPA Fine-tune: one training round on the feedback, MODEL in, personalised MODEL out.

The node shows what an artist changes (method, steps, seed); the other training settings live on
the optional PAPA Training Options node, whose PAPA_OPTIONS output plugs into the Fine-tune node's
`options` input. Without it a round uses the defaults of `core.settings.FinetuneSettings`.
"""

import time

from comfy_api.latest import io

from ..core.settings import FinetuneSettings
from ..host.families import refuse_unsupported_family
from ..host.rounds import finetune
from .plots import loss_curve_image, loss_curve_pil
from .types import CATEGORY, Feedback, Options, Profile

_D = FinetuneSettings()


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
                    "likes": stats.get("likes"),
                    "dislikes": stats.get("dislikes"),
                    "elapsed": round(time.perf_counter() - start, 2),
                },
            )
        if step == steps or step % 5 == 0:
            return ("JPEG", loss_curve_pil(losses, f"{profile}: step {step}/{steps}"), 384)
        return None

    return progress


# The PAPA Training Options node's inputs, in its widget order: (FinetuneSettings field, kind,
# label, spec, tooltip). One table for the node's schema and for the check of API-format prompts
# that still set these on the Fine-tune node (see `legacy_options`).
OPTION_INPUTS = (
    (
        "learning_rate",
        "FLOAT",
        "learning rate",
        dict(min=1e-7, max=1e-1, step=1e-5, round=1e-7),
        "How big each training step is. Higher learns faster from few pictures but a round can "
        "overshoot (everything turns into one kind of image); lower gives gentler rounds.",
    ),
    (
        "c_sim",
        "FLOAT",
        "stay close to the original",
        dict(min=0.0, max=100.0, step=0.001),
        "How strongly the model is held near the original checkpoint while it follows your "
        "likes. Higher keeps more of the original's quality and variety; lower follows your "
        "likes more closely.",
    ),
    (
        "c_pref",
        "FLOAT",
        "follow my picks",
        dict(min=0.0, max=100.0, step=0.01),
        "How strongly your likes pull the model towards them and your dislikes push it away. "
        "The other weights are relative to this one.",
    ),
    (
        "c_anchor",
        "FLOAT",
        "keep the composition",
        dict(min=0.0, max=1000.0, step=0.1),
        "Holds the first, noisiest sampling steps (the ones that decide the layout) to the "
        "original model's, so training cannot blow the picture out of range. 0 turns it off.",
    ),
    (
        "cut",
        "FLOAT",
        "EPAPA cut",
        dict(min=0.0, max=0.95, step=0.05),
        "EPAPA only (ignored with PAPA): the share of the sampling steps, from the clean end, "
        "left to the original model, so fine detail stays the checkpoint's. 0.4 is the paper's "
        "setting.",
    ),
    (
        "batch_size",
        "INT",
        "pictures per step",
        dict(min=1, max=256),
        "How many of your labelled pictures each training step looks at. More is steadier and "
        "slower, and needs more memory.",
    ),
    (
        "timesteps_per_sample",
        "INT",
        "noise levels per picture",
        dict(min=1, max=64),
        "At how many noise levels each picture is studied per step. More is steadier and slower.",
    ),
    (
        "rank",
        "INT",
        "adapter size (rank)",
        dict(min=1, max=256),
        "Size of the small add-on the profile trains. Bigger can hold more detailed taste but "
        "is larger on disk. Chosen when a profile's first round trains and fixed after that.",
    ),
    (
        "alpha",
        "FLOAT",
        "adapter scale (alpha)",
        dict(min=0.1, max=512.0, step=0.1),
        "Strength of the add-on relative to its size (scale = alpha / rank); stored with the "
        "profile.",
    ),
    (
        "gradient_checkpointing",
        "BOOLEAN",
        "save memory (slower)",
        {},
        "Use less GPU memory during training at the cost of time; turn on if a round runs out "
        "of memory.",
    ),
)
OPTION_NAMES = tuple(name for name, *_ in OPTION_INPUTS)


def _option_input(name: str, kind: str, label: str, spec: dict, tooltip: str):
    default = getattr(_D, name)
    cls = {"FLOAT": io.Float, "INT": io.Int, "BOOLEAN": io.Boolean}[kind]
    return cls.Input(name, display_name=label, default=default, tooltip=tooltip, **spec)


def check_option(name: str, value):
    """`value` as the Training Options node would accept it for `name`, else a ValueError that
    says which setting and what range."""
    for field, kind, label, spec, _tip in OPTION_INPUTS:
        if field != name:
            continue
        if kind == "BOOLEAN":
            if not isinstance(value, bool):
                raise ValueError(f"{name} ({label}) must be true or false, got {value!r}.")
            return value
        try:
            number = int(value) if kind == "INT" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} ({label}) must be a number, got {value!r}.") from None
        if kind == "INT" and number != value:
            raise ValueError(f"{name} ({label}) must be a whole number, got {value!r}.")
        if not spec["min"] <= number <= spec["max"]:
            raise ValueError(
                f"{name} ({label}) must be between {spec['min']} and {spec['max']}, got {value!r}."
            )
        return number
    raise KeyError(name)


def legacy_options(prompt, unique_id) -> dict:
    """The Training Options settings an API-format prompt still gives the Fine-tune node itself
    (its inputs before they moved to PAPA Training Options): the server passes a node only its
    declared inputs, so they are read from the prompt. Linked values are not supported there."""
    node = (prompt or {}).get(str(unique_id)) if unique_id is not None else None
    inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
    found = {}
    for name in OPTION_NAMES:
        if name not in inputs:
            continue
        value = inputs[name]
        if isinstance(value, list):
            raise ValueError(
                f"PAPA Fine-tune: '{name}' is now set on a PAPA Training Options node connected "
                "to the Fine-tune node's 'options' input, not linked into the Fine-tune node."
            )
        found[name] = check_option(name, value)
    return found


class TrainingOptions(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPATrainingOptions",
            display_name="PAPA Training Options",
            category=CATEGORY,
            description="Optional fine-tuning settings for PAPA Fine-tune: connect its output to "
            "the Fine-tune node's 'options' input. Without this node every round uses the "
            "defaults shown here, which are tuned to learn in a few rounds without collapsing "
            "onto one kind of image.",
            inputs=[_option_input(*row) for row in OPTION_INPUTS],
            outputs=[
                Options.Output(
                    "options",
                    display_name="options",
                    tooltip="Connect to PAPA Fine-tune's 'options' input.",
                )
            ],
        )

    @classmethod
    def execute(cls, **kw) -> io.NodeOutput:
        return io.NodeOutput({name: check_option(name, kw[name]) for name in OPTION_NAMES})


class FineTune(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAFineTune",
            display_name="PAPA Fine-tune",
            category=CATEGORY,
            description="Train the profile's adapter on this round's likes and dislikes plus "
            "every earlier round (replay), on top of the BASE model, and output the "
            "personalised model. Each run is one round. More settings: connect a PAPA "
            "Training Options node to 'options'.",
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
                    tooltip="PAPA personalises every sampling step. EPAPA only the early, noisy "
                    "steps that decide the composition (fine detail stays the original "
                    "model's) and trains in about half the time.",
                ),
                io.Int.Input(
                    "steps",
                    default=_D.steps,
                    min=1,
                    max=10000,
                    tooltip="How much one round may change the model: more steps learn more from "
                    "this round's labels (and take longer). The default learns within a few "
                    "rounds without turning everything into one kind of image.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFF,
                    tooltip="Any value works: the same seed and labels train the same round.",
                ),
                Options.Input(
                    "options",
                    optional=True,
                    tooltip="Optional: a PAPA Training Options node for the finer settings "
                    "(learning rate, how close to stay to the original, ...). Not connected: "
                    "the tuned defaults.",
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
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def execute(
        cls, model, feedback, profile, method, steps, seed, options=None, **linked
    ) -> io.NodeOutput:
        # The server passes links into inputs the node no longer declares (an old API prompt
        # that linked one of the moved settings) as keywords.
        if linked:
            raise ValueError(
                f"PAPA Fine-tune: {', '.join(sorted(linked))} is now set on a PAPA Training "
                "Options node connected to the Fine-tune node's 'options' input, not linked "
                "into the Fine-tune node."
            )
        refuse_unsupported_family(model)
        if options is None:
            # API-format prompts written before PAPA Training Options keep their settings.
            options = legacy_options(cls.hidden.prompt, cls.hidden.unique_id)
        settings = FinetuneSettings(**options, method=method, steps=steps, seed=seed)
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
