"""PAPA Preference Picker: the artist labels the candidates in the browser (or over HTTP)."""

from __future__ import annotations

import time

from comfy.model_management import InterruptProcessingException
from comfy_api.latest import io
from server import PromptServer

from ..feedback import Feedback
from ..host import feedback_server as fs
from ..host.picker_registry import PickerCancelled
from ..profile.limits import check_request_latents
from .types import CATEGORY, Candidates, Profile
from .types import Feedback as FeedbackType

ON_TIMEOUT = ("fail", "skip round")


def _history_counts(profile) -> dict[str, int]:
    rows = profile.history()
    return {
        "like": sum(1 for r in rows if r.get("label", 0) > 0),
        "dislike": sum(1 for r in rows if r.get("label", 0) < 0),
    }


def _node_title(prompt, unique_id) -> str:
    node = (prompt or {}).get(str(unique_id)) or {}
    return (node.get("_meta") or {}).get("title") or "PAPA Preference Picker"


class PreferencePicker(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAPreferencePicker",
            display_name="PAPA Preference Picker",
            category=CATEGORY,
            description="Pause the run and let the artist like / dislike / skip each candidate, "
            "in this node's gallery, in the pop-up panel, or over HTTP (GET /papa/pending, "
            "POST /papa/feedback). Labels are saved to the profile the moment they arrive.",
            inputs=[
                io.Image.Input(
                    "images", tooltip="The decoded candidates, one image per candidate."
                ),
                Candidates.Input(
                    "candidates", tooltip="The candidate sampler's metadata output (same order)."
                ),
                Profile.Input(
                    "profile",
                    optional=True,
                    tooltip="Profile that stores the labels (its history and the next round). "
                    "Without one the labels only travel downstream.",
                ),
                io.Int.Input(
                    "timeout",
                    default=1800,
                    min=0,
                    max=7 * 24 * 3600,
                    tooltip="Seconds to wait for the artist; 0 waits forever. The queue is "
                    "paused while waiting.",
                ),
                io.Combo.Input(
                    "on_timeout",
                    options=list(ON_TIMEOUT),
                    default="fail",
                    tooltip="fail: stop the run with an error. skip round: go on with every "
                    "candidate skipped (nothing is trained).",
                ),
            ],
            outputs=[
                FeedbackType.Output(
                    "feedback", tooltip="The labelled candidates, for PAPA Fine-Tune."
                ),
            ],
            hidden=[io.Hidden.unique_id, io.Hidden.prompt],
            is_output_node=True,
            not_idempotent=True,
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs) -> float:
        return float("nan")  # every queue asks the artist again

    @classmethod
    def validate_inputs(cls, timeout, on_timeout, **kwargs) -> bool | str:
        if on_timeout not in ON_TIMEOUT:
            return f"on_timeout must be one of {ON_TIMEOUT}, got {on_timeout!r}."
        return True

    @classmethod
    def execute(cls, images, candidates, timeout, on_timeout, profile=None) -> io.NodeOutput:
        if images.shape[0] != len(candidates):
            raise ValueError(
                f"PAPA Preference Picker got {images.shape[0]} images for {len(candidates)} "
                "candidates: connect the VAE Decode of the same candidate sampler to both inputs."
            )
        # Before the request opens or a preview is written: a request never holds more latents
        # than a profile may record (profile.limits).
        check_request_latents(candidates.latents, "PAPA Preference Picker")
        server = PromptServer.instance
        rid = fs.new_request_id()
        round_ = profile.round + 1 if profile is not None else None
        counts = _history_counts(profile.open()) if profile is not None else {}
        previews = fs.save_previews(images, rid)
        payload = {
            "request_id": rid,
            "node_id": str(cls.hidden.unique_id),
            "title": _node_title(cls.hidden.prompt, cls.hidden.unique_id),
            "prompt_id": getattr(server, "last_prompt_id", None),
            "client_id": server.client_id,
            "profile": profile.name if profile is not None else None,
            "round": round_,
            "counts": {"like": counts.get("like", 0), "dislike": counts.get("dislike", 0)},
            "candidates": [
                {"index": i, "id": cid, "seed": seed, "image": ref}
                for i, (cid, seed, ref) in enumerate(
                    zip(candidates.ids, candidates.seeds, previews, strict=True)
                )
            ],
            "timeout": timeout,
            "deadline": time.time() + timeout if timeout > 0 else None,
            "on_timeout": on_timeout,
        }
        req = fs.REGISTRY.open(rid, candidates, payload, payload["profile"], round_)
        reason = "error"
        try:
            server.send_sync("papa.request", payload, server.client_id)
            try:
                answer = fs.wait_for_answer(req, timeout)
            except InterruptProcessingException:
                reason = "interrupted"
                raise
            except PickerCancelled as e:
                reason = "cancelled"
                raise RuntimeError(
                    f"{e} Queue the workflow again to get a new round of candidates."
                ) from None
            if answer is None:
                reason = "timeout"
                if on_timeout == "fail":
                    raise TimeoutError(
                        f"PAPA Preference Picker: nobody answered within {timeout} s. Queue "
                        "again, raise 'timeout', or set on_timeout to 'skip round'."
                    )
                labels = [0.0] * len(candidates)
            else:
                reason = "answered"
                labels = answer.labels
        finally:
            fs.finish_request(req, reason)
        feedback = Feedback(
            latents=candidates.latents,
            labels=labels,
            candidate_ids=list(candidates.ids),
            positive=candidates.positive,
            round=round_,
            profile=payload["profile"],
            request_id=rid,
            model_fingerprint=candidates.model_fingerprint,
            extra={"reason": reason, "seeds": list(candidates.seeds)},
        )
        words = {1.0: "like", -1.0: "dislike", 0.0: "skip"}
        ui = {
            "papa_feedback": [
                {
                    "request_id": rid,
                    "reason": reason,
                    "labels": {
                        c: words.get(v, v) for c, v in zip(candidates.ids, labels, strict=True)
                    },
                    "counts": feedback.counts(),
                }
            ]
        }
        return io.NodeOutput(feedback, ui=ui)
