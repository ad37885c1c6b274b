"""The pack's socket types, declared once."""

from comfy_api.latest import io

Candidates = io.Custom("PAPA_CANDIDATES")
Feedback = io.Custom("PAPA_FEEDBACK")
Profile = io.Custom("PAPA_PROFILE")
# PAPA Training Options -> PAPA Fine-tune: a dict of FinetuneSettings fields.
Options = io.Custom("PAPA_OPTIONS")

CATEGORY = "PAPA"
