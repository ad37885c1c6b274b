"""The fine-tune settings of one round, shared by the ComfyUI node and the diffusers backend.

Torch-free apart from `PapaConfig`: the same names, defaults and validation on both paths, so a
profile's recorded settings mean the same thing whichever backend trained it.
"""

from dataclasses import asdict, dataclass

from .objective import PapaConfig

METHODS = ("PAPA", "EPAPA")
# The Fine-tune node's tuned training inputs: what a template or a test copies from the defaults.
TUNED_INPUTS = (
    "cut",
    "steps",
    "learning_rate",
    "rank",
    "alpha",
    "c_pref",
    "c_sim",
    "batch_size",
    "timesteps_per_sample",
)


@dataclass(frozen=True)
class FinetuneSettings:
    """One round's training settings (the PAPA Fine-tune node's inputs)."""

    method: str = "PAPA"
    cut: float = 0.4
    steps: int = 10
    learning_rate: float = 2e-3
    rank: int = 8
    alpha: float = 8.0
    c_pref: float = 1.0
    c_sim: float = 0.1
    dislike_weight: float = 1.0
    dislike_cap: float = 2.0
    batch_size: int = 8
    timesteps_per_sample: int = 2
    seed: int = 0
    gradient_checkpointing: bool = False
    c_anchor: float = 0.0
    anchor_timesteps: int = 1
    weighting: str = "snr"
    snr_gamma: float = 5.0
    c_trust: float = 0.5
    diversity: bool = True
    balance: bool = True
    paired: bool = True
    dislike_from: float = 0.3

    def papa_config(self) -> PapaConfig:
        if self.method not in METHODS:
            raise ValueError(f"method must be 'PAPA' or 'EPAPA', got {self.method!r}.")
        return PapaConfig(
            c_pref=self.c_pref,
            c_sim=self.c_sim,
            dislike_weight=self.dislike_weight,
            dislike_cap=self.dislike_cap,
            timesteps_per_sample=self.trained_timesteps,
            cut=self.cut if self.method == "EPAPA" else 0.0,
            c_anchor=self.c_anchor,
            anchor_timesteps=self.anchor_timesteps if self.c_anchor > 0 else 0,
            weighting=self.weighting,
            snr_gamma=self.snr_gamma,
            c_trust=self.c_trust,
            dislike_from=self.dislike_from,
        )

    @property
    def trained_timesteps(self) -> int:
        """Monte-Carlo timesteps per candidate per step. EPAPA trains only the part of the
        schedule above the cut, so it draws the same density of timesteps there with
        max(1, round(timesteps_per_sample * (1 - cut))) draws: that is where its saving in network
        passes comes from (the paper's 40% at cut 0.4)."""
        if self.method == "EPAPA" and self.weighting == "snr":
            return max(1, round(self.timesteps_per_sample * (1 - self.cut)))
        return self.timesteps_per_sample

    @property
    def pairs_per_sample(self) -> int:
        """Network passes per replayed candidate per step: preference plus anchor timesteps."""
        cfg = self.papa_config()
        return cfg.timesteps_per_sample + cfg.anchor_timesteps

    def as_dict(self) -> dict:
        return asdict(self)
