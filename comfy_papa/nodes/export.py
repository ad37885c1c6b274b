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
                    tooltip="File name in models/loras (the profile name and round are appended; "
                    "letters, digits, '_', '-', '.').",
                ),
            ],
            outputs=[io.String.Output("lora_name", tooltip="Name to pick in LoraLoader.")],
        )

    @classmethod
    def execute(cls, profile, filename) -> io.NodeOutput:
        validate_file_stem(filename.rstrip("_-.") or "x")
        p = profile.open()
        root = folder_paths.get_folder_paths("loras")[0]
        name = export_lora(p, root, f"{filename}{p.name}_r{p.round:04d}")
        return io.NodeOutput(name, ui={"text": [json.dumps({"lora": name})]})
