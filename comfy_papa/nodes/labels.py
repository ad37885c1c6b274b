"""PAPA Labels: FEEDBACK from latents and a label string, for scripted loops and tests."""

from comfy_api.latest import io

from ..feedback import Feedback as FeedbackData
from ..feedback import parse_label_string
from .types import CATEGORY, Candidates, Feedback, Profile


class Labels(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPALabels",
            display_name="PAPA Labels",
            category=CATEGORY,
            description='Label candidates from text: "+ - + 0" (like, dislike, like, skip).',
            inputs=[
                Candidates.Input("metadata", tooltip="From PAPA Candidate Sampler."),
                io.String.Input(
                    "labels",
                    default="+ -",
                    tooltip="One per candidate: + like, - dislike, 0 skip, or a number in [-1, 1].",
                ),
                Profile.Input("profile", optional=True, tooltip="Profile, for the round number."),
            ],
            outputs=[Feedback.Output("feedback", tooltip="Labelled candidates for Fine-tune.")],
        )

    @classmethod
    def execute(cls, metadata, labels, profile=None) -> io.NodeOutput:
        values = parse_label_string(labels)
        if len(values) != len(metadata):
            raise ValueError(
                f"PAPA Labels: {len(values)} labels for {len(metadata)} candidates; give exactly "
                "one label per candidate."
            )
        fb = FeedbackData(
            latents=metadata.latents,
            labels=values,
            candidate_ids=list(metadata.ids),
            positive=metadata.positive,
            round=(profile.round + 1) if profile else None,
            profile=profile.name if profile else None,
            model_fingerprint=metadata.model_fingerprint,
        )
        return io.NodeOutput(fb)
