"""PAPA Profile (open / create / roll back) and PAPA Apply Profile."""

from comfy_api.latest import io

from ..host.adapters import mark_personalised
from ..host.profiles import ProfileRef, open_profile
from ..host.rounds import personalise
from ..profile.names import ProfileError, validate_profile_name
from .types import CATEGORY, Profile


class ProfileNode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAProfile",
            display_name="PAPA Profile",
            category=CATEGORY,
            description="Create or open a named taste profile (adapter, feedback history, "
            "optimizer state). Stored under models/papa_profiles/<name>.",
            inputs=[
                io.String.Input(
                    "name",
                    default="my-taste",
                    tooltip="Profile name: letters, digits, '_', '-', '.'; created if missing.",
                ),
                io.Int.Input(
                    "rollback_to_round",
                    default=-1,
                    min=-1,
                    max=100000,
                    tooltip="-1 keeps the current round. Set a round number to go back to it; it "
                    "is applied once, when the value changes. Later rounds move to the profile's "
                    "archive folder, nothing is deleted.",
                ),
                io.Boolean.Input(
                    "reset",
                    default=False,
                    tooltip="Start again from the base model (applied once when switched on; all "
                    "rounds are kept in the archive folder; the history is kept).",
                ),
            ],
            outputs=[
                Profile.Output("profile", tooltip="The profile, at its current round."),
                io.String.Output("summary", tooltip="Round, label counts and settings."),
            ],
        )

    @classmethod
    def validate_inputs(cls, name, rollback_to_round=-1, reset=False):
        try:
            validate_profile_name(name)
        except ProfileError as e:
            return str(e)
        return True

    @classmethod
    def fingerprint_inputs(cls, name, rollback_to_round=-1, reset=False):
        try:
            return open_profile(name).version
        except (ProfileError, OSError):
            return float("nan")

    @classmethod
    def execute(cls, name, rollback_to_round=-1, reset=False) -> io.NodeOutput:
        profile = open_profile(name)
        requests = profile.manifest.get("node_requests", {})
        if reset and not requests.get("reset", False):
            profile.reset()
        if rollback_to_round >= 0 and requests.get("rollback", -1) != rollback_to_round:
            profile.rollback(rollback_to_round)
        profile.set_node_requests({"reset": bool(reset), "rollback": int(rollback_to_round)})
        counts = profile.manifest.get("label_counts", {})
        summary = (
            f"profile {profile.name}: round {profile.round}, likes {counts.get('like', 0)}, "
            f"dislikes {counts.get('dislike', 0)}, skips {counts.get('skip', 0)}"
        )
        ref = ProfileRef(profile.name, profile.round, profile.version)
        return io.NodeOutput(ref, summary, ui={"text": [summary]})


class ApplyProfile(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAApplyProfile",
            display_name="PAPA Apply Profile",
            category=CATEGORY,
            description="Personalise a base MODEL with a profile's current adapter.",
            inputs=[
                io.Model.Input("model", tooltip="The base model the profile was trained on."),
                Profile.Input("profile", tooltip="From PAPA Profile."),
                io.Float.Input(
                    "strength",
                    default=1.0,
                    min=-4.0,
                    max=4.0,
                    step=0.05,
                    tooltip="Adapter strength (1 = as trained, 0 = base model).",
                ),
            ],
            outputs=[io.Model.Output(tooltip="The personalised model.")],
        )

    @classmethod
    def execute(cls, model, profile, strength) -> io.NodeOutput:
        from ..host.models import model_fingerprint, require_base_model

        require_base_model(model, "PAPA Apply Profile")
        p = profile.open()
        p.check_base(model_fingerprint(model))
        state = p.load_round()
        if not state.adapter:
            out = model.clone()
            mark_personalised(out, p.name, 0, "none")
            return io.NodeOutput(out)
        out = personalise(model, state.adapter, p.settings, p.name, p.round, strength)
        return io.NodeOutput(out)
