"""The PAPA Fine-tune node in an API-format graph, with its finer settings on a PAPA Training
Options node (as an artist wires it), so a test states only the settings it changes."""

from __future__ import annotations

from comfy_papa.core.settings import FinetuneSettings

from .graph import Graph, NodeRef

# PAPA Fine-tune's own widgets; everything else is a PAPA Training Options input.
NODE_INPUTS = ("method", "steps", "seed")
# PAPA Training Options' inputs (tests/host/test_training_options.py checks them against the
# server's /object_info).
OPTION_INPUTS = (
    "learning_rate",
    "c_sim",
    "c_pref",
    "c_anchor",
    "cut",
    "batch_size",
    "timesteps_per_sample",
    "rank",
    "alpha",
    "gradient_checkpointing",
)


def finetune_node(g: Graph, model, feedback, profile, node_id: str = "ft", **settings) -> NodeRef:
    """PAPA Fine-tune (method PAPA, the default steps, seed 0 unless given); any setting of
    OPTION_INPUTS adds a PAPA Training Options node with it (the rest at their defaults)."""
    d = FinetuneSettings()
    unknown = set(settings) - set(NODE_INPUTS) - set(OPTION_INPUTS)
    if unknown:
        raise TypeError(f"not a PAPA Fine-tune setting: {sorted(unknown)}")
    node = {"method": "PAPA", "steps": d.steps, "seed": 0}
    node.update({k: v for k, v in settings.items() if k in NODE_INPUTS})
    opts = {k: v for k, v in settings.items() if k in OPTION_INPUTS}
    if opts:
        options = g.node(
            "PAPATrainingOptions",
            node_id=f"{node_id}-options",
            **{k: opts.get(k, getattr(d, k)) for k in OPTION_INPUTS},
        )
        node["options"] = options[0]
    return g.node(
        "PAPAFineTune", node_id=node_id, model=model, feedback=feedback, profile=profile, **node
    )
