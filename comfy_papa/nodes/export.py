"""PAPA Export LoRA: a profile's adapter as a LoRA file that ComfyUI's LoraLoader accepts."""

import json

import folder_paths
from comfy_api.latest import io

from ..host.export import export_lora
from ..profile.names import validate_file_stem
from .types import CATEGORY, Profile


class ExportLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PAPAExportLoRA",
            display_name="PAPA Export LoRA",
            category=CATEGORY,
            description="Write the profile's adapter to models/loras with provenance metadata "
            "(base model fingerprint, rounds, label counts, settings).",
            is_output_node=True,
            inputs=[
                Profile.Input("profile", tooltip="From PAPA Profile."),
                io.String.Input(
                    "filename",
                    default="papa_",
                    tooltip="File name prefix in models/loras (the profile name, the round and 8 "
                    "characters of the adapter's checksum are appended, so that a round after a "
                    "reset gets a new name; letters, digits, '_', '-', '.').",
                ),
                io.Boolean.Input(
                    "overwrite",
                    default=False,
                    optional=True,
                    tooltip="Replace an existing file of the same name. Off: an existing file "
                    "that is not this very export is kept and the node stops with an error.",
                ),
            ],
            outputs=[io.String.Output("lora_name", tooltip="Name to pick in LoraLoader.")],
        )

    @classmethod
    def execute(cls, profile, filename, overwrite=False) -> io.NodeOutput:
        validate_file_stem(filename.rstrip("_-.") or "x")
        p = profile.open()
        root = folder_paths.get_folder_paths("loras")[0]
        name = export_lora(p, root, filename, overwrite=overwrite)
        return io.NodeOutput(name, ui={"text": [json.dumps({"lora": name})]})
