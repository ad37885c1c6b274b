"""The V3 extension that registers every comfy-papa node with ComfyUI."""

from comfy_api.latest import ComfyExtension, io

from .nodes.compare import BeforeAfter
from .nodes.digits import DigitsDemoLoader, SimulatedUser
from .nodes.export import ExportLoRA
from .nodes.finetune import FineTune, TrainingOptions
from .nodes.labels import Labels
from .nodes.picker import PreferencePicker
from .nodes.profile import ApplyProfile, ProfileNode
from .nodes.sampler import CandidateSampler


class PapaExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            ProfileNode,
            ApplyProfile,
            CandidateSampler,
            PreferencePicker,
            Labels,
            FineTune,
            TrainingOptions,
            BeforeAfter,
            ExportLoRA,
            DigitsDemoLoader,
            SimulatedUser,
        ]


async def comfy_entrypoint() -> PapaExtension:
    return PapaExtension()
