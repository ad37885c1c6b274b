"""The V3 extension that registers every comfy-papa node with ComfyUI."""

from comfy_api.latest import ComfyExtension, io

from .nodes.picker import PreferencePicker
from .nodes.sampler import CandidateSampler


class PapaExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [CandidateSampler, PreferencePicker]


async def comfy_entrypoint() -> PapaExtension:
    return PapaExtension()
