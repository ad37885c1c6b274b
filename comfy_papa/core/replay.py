"""Replay buffer of all labelled candidates so far, serialisable to safetensors."""

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

FORMAT = "comfy-papa-replay/1"
_COND_PREFIX = "cond."
# The replay's conditioning entry holding each candidate's index into `CondGroups`.
GROUP_KEY = "group"
_GROUP_NAME = re.compile(r"g([0-9]+)\.(.+)", re.DOTALL)


@dataclass
class CondGroups:
    """The distinct conditionings (prompts) of a profile's labelled candidates, by group index.

    Each group is a mapping of named tensors (ComfyUI: "cross_attn" and "opt.<name>"; diffusers:
    "cross_attn"); a replayed candidate names its group in `ReplayBuffer.groups`. Stored flat
    (`to_flat` / `from_flat`) as one tensor per "g<index>.<name>": a round's conds.safetensors.
    A conditioning without tensors (no prompt) stores nothing: `index` gives it the next free
    index, as the format always has.
    """

    groups: dict[int, dict[str, Tensor]] = field(default_factory=dict)

    @classmethod
    def from_flat(cls, flat: Mapping[str, Tensor]) -> "CondGroups":
        """Read "g<index>.<name>" tensors (a round's conds.safetensors)."""
        groups: dict[int, dict[str, Tensor]] = {}
        for key, value in flat.items():
            m = _GROUP_NAME.fullmatch(key)
            if m is None:
                raise ValueError(
                    f"conditioning tensor {key!r} is not named g<group>.<name>; this is not a "
                    "comfy-papa conds file."
                )
            groups.setdefault(int(m.group(1)), {})[m.group(2)] = value
        return cls(dict(sorted(groups.items())))

    def to_flat(self) -> dict[str, Tensor]:
        """The "g<index>.<name>" tensors, in group order: the inverse of `from_flat`."""
        return {f"g{g}.{k}": v for g, tensors in self.items() for k, v in tensors.items()}

    def index(self, cond: Mapping[str, Tensor]) -> int:
        """The index of the stored group identical to `cond` (same names, shapes and values), or
        a new index (one above the largest) under which `cond` is added."""
        for g, mine in self.items():
            if mine.keys() == cond.keys() and all(
                mine[k].shape == v.shape and torch.equal(mine[k], v) for k, v in cond.items()
            ):
                return g
        g = max(self.groups) + 1 if self.groups else 0
        if cond:
            self.groups[g] = dict(cond)
        return g

    def items(self) -> Iterator[tuple[int, dict[str, Tensor]]]:
        """(index, tensors) of every stored group, by increasing index."""
        return iter(sorted(self.groups.items()))

    def __len__(self) -> int:
        return len(self.groups)


class ReplayBuffer:
    """Labelled candidates: latents x0 [N, ...], labels [N] (+ like, - dislike, 0 skip), the round
    each was labelled in [N], unique candidate ids, and optional conditioning tensors [N, ...].

    Tensors are kept detached on the CPU so the buffer costs no accelerator memory; move the
    sampled rows to the model's device when training.
    """

    def __init__(self) -> None:
        self.latents: Tensor | None = None
        self.labels = torch.zeros(0)
        self.rounds = torch.zeros(0, dtype=torch.long)
        self.ids: list[str] = []
        self.cond: dict[str, Tensor] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(
        self,
        latents: Tensor,
        labels: Tensor,
        rounds: Tensor,
        ids: list[str],
        cond: Mapping[str, Tensor] | None = None,
    ) -> None:
        """Append n candidates; validates shapes against each other and the stored items."""
        n = len(ids)
        cond = dict(cond or {})
        if latents.shape[0] != n or labels.shape != (n,) or rounds.shape != (n,):
            raise ValueError(
                f"replay add: got {n} ids, latents {tuple(latents.shape)}, labels "
                f"{tuple(labels.shape)}, rounds {tuple(rounds.shape)}; pass one latent, one "
                "label and one round per id."
            )
        if self.latents is not None and latents.shape[1:] != self.latents.shape[1:]:
            raise ValueError(
                f"replay add: latent shape {tuple(latents.shape[1:])} differs from the buffer's "
                f"{tuple(self.latents.shape[1:])}; keep one resolution and model per buffer, or "
                "start a new buffer."
            )
        clash = sorted(set(ids) & set(self.ids)) + sorted(
            i for i, c in Counter(ids).items() if c > 1
        )
        if clash:
            raise ValueError(
                f"replay add: candidate ids already present or repeated: {clash[:5]}; each "
                "candidate may be labelled once — relabel by loading a buffer without it."
            )
        if len(self) and cond.keys() != self.cond.keys():
            raise ValueError(
                f"replay add: conditioning keys {sorted(cond)} differ from the buffer's "
                f"{sorted(self.cond)}; use the same conditioning inputs for every round."
            )
        for key, value in cond.items():
            if value.shape[0] != n or (len(self) and value.shape[1:] != self.cond[key].shape[1:]):
                raise ValueError(
                    f"replay add: conditioning {key!r} has shape {tuple(value.shape)}; expected "
                    f"{n} rows shaped like the stored ones."
                )

        def grow(old: Tensor | None, new: Tensor) -> Tensor:
            new = new.detach().cpu()
            return new.clone() if old is None else torch.cat([old, new])

        self.latents = grow(self.latents, latents)
        self.labels = grow(self.labels if len(self) else None, labels.float())
        self.rounds = grow(self.rounds if len(self) else None, rounds.long())
        self.cond = {k: grow(self.cond.get(k), v) for k, v in cond.items()}
        self.ids = self.ids + list(ids)

    @property
    def groups(self) -> Tensor:
        """Each candidate's conditioning group, [N] long: an index into the round's
        `CondGroups`."""
        return self.cond[GROUP_KEY]

    def label_counts(self) -> dict[str, int]:
        """Number of liked (label > 0), disliked (< 0) and skipped (== 0) candidates."""
        return {
            "like": int((self.labels > 0).sum()),
            "dislike": int((self.labels < 0).sum()),
            "skip": int((self.labels == 0).sum()),
        }

    def sample(self, batch: int, generator: torch.Generator) -> Tensor:
        """Indices of min(batch, n) distinct training items, drawn uniformly without replacement
        among the n liked or disliked ones (skipped items carry no training signal)."""
        eligible = torch.nonzero(self.labels != 0).flatten()
        if len(eligible) == 0:
            raise ValueError(
                "replay buffer has no liked or disliked candidates to train on; label at least "
                "one candidate before fine-tuning."
            )
        perm = torch.randperm(len(eligible), generator=generator, device=generator.device)
        return eligible[perm[:batch].cpu()]

    def to_safetensors(self) -> tuple[dict[str, Tensor], dict[str, str]]:
        """Tensors and string metadata for safetensors.torch.save_file; ids go in the metadata."""
        tensors = {"labels": self.labels, "rounds": self.rounds}
        if self.latents is not None:
            tensors["latents"] = self.latents
        tensors.update({_COND_PREFIX + k: v for k, v in self.cond.items()})
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        return tensors, {"format": FORMAT, "ids": json.dumps(self.ids)}

    @classmethod
    def from_safetensors(
        cls, tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None
    ) -> "ReplayBuffer":
        """Inverse of `to_safetensors` (metadata from safetensors.safe_open(...).metadata())."""
        if not metadata or metadata.get("format") != FORMAT:
            found = (metadata or {}).get("format")
            raise ValueError(
                f"not a comfy-papa replay file (metadata format {found!r}, expected {FORMAT!r}); "
                "load a file written by the PAPA save node."
            )
        buffer = cls()
        ids = json.loads(metadata["ids"])
        if ids:
            cond = {
                k[len(_COND_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_COND_PREFIX)
            }
            buffer.add(tensors["latents"], tensors["labels"], tensors["rounds"], ids, cond)
        return buffer
