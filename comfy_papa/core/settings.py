"""The fine-tune settings of one round, shared by the ComfyUI node and the diffusers backend.

Torch-free apart from `PapaConfig`: the same names, defaults and validation on both paths, so a
profile's recorded settings mean the same thing whichever backend trained it.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from .objective import PapaConfig
from .schedule import check_cut

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


class SettingsError(ValueError):
    """Recorded settings that cannot be read back; the message names the field."""


@dataclass(frozen=True)
class FinetuneSettings:
    """One round's training settings (the PAPA Fine-tune node's inputs).

    Validated once, when built (`__post_init__`: the method, the cut and every value
    `PapaConfig` checks). A committed round records `as_dict()`; `from_dict` reads it back, with
    the defaults below (the only place they are written) for the fields it lacks.
    """

    method: str = "PAPA"
    cut: float = 0.4
    steps: int = 10
    learning_rate: float = 2e-3
    rank: int = 8
    alpha: float = 8.0
    c_pref: float = 1.0
    c_sim: float = 0.1
    dislike_weight: float = 1.0
    dislike_cap: float = 1.5
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
    snr_floor: float = 0.05

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be 'PAPA' or 'EPAPA', got {self.method!r}.")
        check_cut(self.cut)
        self.papa_config()

    @classmethod
    def from_dict(cls, record: Mapping) -> "FinetuneSettings":
        """The settings a round recorded (`as_dict()`, read back from JSON).

        Fields the record lacks (a profile written before they existed) take the defaults;
        keys that are no field (one a later version dropped) are ignored here (the stored record
        is left as it was). An int where a float belongs is read as that float; any other wrong
        type, or a value out of range, raises `SettingsError` naming the field."""
        if not isinstance(record, Mapping):
            raise SettingsError(
                f"the recorded settings are a {type(record).__name__}, not a mapping of names "
                "to values."
            )
        values = {}
        for f in fields(cls):
            if f.name not in record:
                continue
            value, kind = record[f.name], _KINDS[f.name]
            if kind is float and type(value) is int:
                value = float(value)
            if type(value) is not kind:
                raise SettingsError(
                    f"setting {f.name!r} is {value!r} ({type(value).__name__}); expected a "
                    f"{kind.__name__}."
                )
            values[f.name] = value
        try:
            return cls(**values)
        except ValueError as e:
            raise SettingsError(f"the recorded settings are out of range: {e}") from e

    def papa_config(self) -> PapaConfig:
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
            snr_floor=self.snr_floor,
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


# The type of each field, from its annotation: what `from_dict` accepts.
_TYPES = {t.__name__: t for t in (str, int, float, bool)}
_KINDS = {
    f.name: f.type if isinstance(f.type, type) else _TYPES[f.type] for f in fields(FinetuneSettings)
}
