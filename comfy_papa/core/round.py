"""One training round's optimisation, written once for every backend.

A backend (ComfyUI's host, diffusers) supplies only `predict(batch, adapter_on) -> x0`: the
denoised prediction of the batch's pairs (it noises `batch["x0"]` with `batch["noise"]` at
`batch["sigma"]` in its own convention), with the adapter on or off; and the adapter's parameters.
Everything else is here: which replayed candidates a step trains on (diversity and like/dislike
balance), the Monte-Carlo timesteps, the trust region to the previous round, the loss, the guarded
optimizer step and the numbers a progress display shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .objective import mc_timestep_batch, papa_loss
from .optim import guarded_step, restore_optimizer
from .replay import GROUP_KEY, ReplayBuffer

Predict = Callable[[dict, bool], Tensor]
OnStep = Callable[[int, int, dict], None]


def round_seed(seed: int, round_: int) -> int:
    """The training seed of round `round_` for a user seed of any size (a widget accepts up to
    2^64 - 1): a hash of both, below 2^63, so it fits torch.Generator.manual_seed."""
    digest = hashlib.sha256(f"papa-round:{int(seed)}:{int(round_)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def density_weights(latents: Tensor, bandwidth: float = 0.25) -> Tensor:
    """Inverse local density of each latent among `latents` (mean 1): 1 / sum_j k(x_i, x_j) with a
    Gaussian kernel whose squared width is `bandwidth` times the median squared distance.

    Near-copies share one unit of weight, so a group of similar liked samples (what a model that
    starts to collapse produces round after round) counts about as much as a single distinct one:
    the replay stops rewarding the rich. Model-agnostic: distances between stored latents, no
    classifier.
    """
    n = len(latents)
    if n < 3:
        return torch.ones(n)
    flat = latents.flatten(1).double()
    d2 = torch.cdist(flat, flat).square()
    off = d2[~torch.eye(n, dtype=torch.bool)]
    h2 = float(off.median()) * bandwidth
    if not h2 > 0:
        return torch.ones(n)
    w = torch.exp(-d2 / h2).sum(dim=1).reciprocal()
    return (w / w.mean()).float()


def replay_weights(replay: ReplayBuffer, diversity: bool, balance: bool = False) -> Tensor:
    """Sampling weight of each replayed candidate: 0 for skipped ones; within the liked and the
    disliked group each item weighs its inverse density (`density_weights`) when `diversity`,
    else 1; the groups keep their shares of the labelled items, or with `balance` weigh half each
    (a step then sees as many likes as dislikes: likes are the scarce signal early on)."""
    labels = replay.labels
    weights = torch.zeros(len(labels))
    groups = [mask for mask in (labels > 0, labels < 0) if bool(mask.any())]
    for mask in groups:
        if diversity and replay.latents is not None:
            weights[mask] = density_weights(replay.latents[mask])
        else:
            weights[mask] = 1.0
        if balance:
            weights[mask] = weights[mask] / weights[mask].sum() * 0.5 * len(labels)
    return weights


def dislike_scale(labels: Tensor) -> float:
    """The factor on the dislike term: 0 before the first like, else 1.

    With no likes yet the dislikes train nothing: pushing away from everything drawn, with
    nothing to pull towards, only degrades the model (a rare preference moved away from its likes
    that way). Once there is a like, balanced sampling (`replay_weights`) draws likes and
    dislikes half each and both weigh 1: each disliked item's push is bounded by the cap
    (`objective.bounded_dislike`), so few dislikes drawn often cannot run away. An earlier factor
    min(1, dislikes / likes) faded the dislikes exactly as the model improved (fewer dislikes per
    round), and the model drifted back towards what was disliked (digits: 0.69 -> 0.52 liked
    between 50 and 100 labels; with the factor at 1, see BENCHMARKS.md). Unbalanced sampling
    uses the same factor."""
    return 1.0 if bool((labels > 0).any()) else 0.0


def sample_indices(weights: Tensor, batch: int, generator: torch.Generator) -> Tensor:
    """min(batch, items with weight > 0) distinct indices drawn with probability ~ weight."""
    eligible = int((weights > 0).sum())
    if eligible == 0:
        raise ValueError(
            "replay buffer has no liked or disliked candidates to train on; label at least one "
            "candidate before fine-tuning."
        )
    w = weights.to(generator.device, torch.float64)
    return torch.multinomial(w, min(batch, eligible), replacement=False, generator=generator).cpu()


def adapter_groups(names: list[str]) -> dict[str, list[int]]:
    """The adapter module of each trainable tensor, by index into `names`: the name less its
    factor ("x.lora_up.weight" and "x.lora_down.weight" -> "x"), else the name itself."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        module = name
        for suffix in (".lora_up.weight", ".lora_down.weight"):
            if name.endswith(suffix):
                module = name[: -len(suffix)]
        groups.setdefault(module, []).append(i)
    return groups


class AdapterCoverageError(ValueError):
    """Some adapter modules received no gradient in a whole round: the model ran without them."""


@contextlib.contextmanager
def swapped(params: list[Tensor], values: list[Tensor]) -> Iterator[None]:
    """Temporarily give `params` the tensors `values` (same shapes) without touching autograd."""
    saved = [p.data for p in params]
    try:
        for p, v in zip(params, values, strict=True):
            p.data = v
        yield
    finally:
        for p, v in zip(params, saved, strict=True):
            p.data = v


class RoundLoop:
    """The optimisation of one round on a replay buffer, for any backend.

    `params`: the adapter's trainable parameters by name (their values at construction are the
    previous round's adapter). `ref_is_base`: the previous round is the base model (a fresh
    adapter), so the trust region needs no extra forward pass. Subclasses (the benchmark's
    baselines) override `make_batch` and `compute_loss` to train the same adapters with their own
    objectives.
    """

    def __init__(
        self,
        params: dict[str, torch.nn.Parameter],
        replay: ReplayBuffer,
        settings,
        optimizer_state: dict[str, Tensor],
        round_seed: int,
        ref_is_base: bool = True,
    ) -> None:
        self.params = params
        self.names = list(params)
        self.replay = replay
        self.settings = settings
        self.cfg = settings.papa_config()
        self.optimizer = torch.optim.AdamW(
            params.values(), lr=settings.learning_rate, weight_decay=0.0
        )
        # Restored in `train`, once the backend has put the adapter where it trains: the
        # optimizer then places the moments on each parameter's device.
        self._optimizer_state = optimizer_state
        self.round_seed = round_seed
        self.ref_is_base = ref_is_base
        self.weights = replay_weights(replay, settings.diversity, settings.balance)
        self.dislike_scale = dislike_scale(replay.labels)
        # Paired steps draw likes and dislikes separately: their weights, once per round.
        likes, dislikes = replay.labels > 0, replay.labels < 0
        self.paired = (
            settings.paired
            and settings.balance
            and bool(likes.any())
            and bool(dislikes.any())
            and self.dislike_scale > 0
        )
        zero = torch.zeros_like(self.weights)
        self._like_weights = torch.where(likes, self.weights, zero)
        self._dislike_weights = torch.where(dislikes, self.weights, zero)
        self.losses: list[float] = []
        self.last_stats: dict = {}
        self.skipped_steps = 0
        self.passes = 0
        self.reference_passes = 0
        self.seconds = 0.0
        # Which tensors had a non-zero gradient at least once this round (one flag each, kept on
        # the adapter's device so counting costs no synchronisation per step).
        self.groups = adapter_groups(self.names)
        self._grad_seen: Tensor | None = None
        self.idle_modules: list[str] = []  # applied but without gradient (check_coverage)

    def make_batch(self, gen, x0_all, labels_all, groups_all, sigmas, kind, device) -> dict:
        """One step's (sample, timestep) pairs: a replay minibatch (`replay_weights`) expanded
        over Monte-Carlo timesteps (`mc_timestep_batch`)."""
        idx, share = self.pick(gen)
        idx = idx.to(device)
        b = mc_timestep_batch(
            x0_all[idx],
            {GROUP_KEY: groups_all[idx]},
            labels_all[idx],
            sigmas,
            kind,
            self.cfg,
            gen,
            share,
        )
        b["dislike_scale"] = self.dislike_scale
        return b

    def pick(self, gen: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """A step's replay indices, and for paired batches (settings.paired, with balance) the
        `share` map of `mc_timestep_batch`: half likes, half dislikes, the i-th disliked item
        noised like the i-th liked one (a same-noise contrast per pair)."""
        bs = self.settings.batch_size
        if not self.paired:
            return sample_indices(self.weights, bs, gen), None
        a = sample_indices(self._like_weights, max(1, bs // 2), gen)
        b = sample_indices(self._dislike_weights, bs - len(a), gen)
        share = torch.arange(len(a) + len(b))
        n = min(len(a), len(b))
        share[len(a) : len(a) + n] = torch.arange(n)
        return torch.cat([a, b]), share

    def compute_loss(self, b: dict, x0_pred: Tensor, x0_base: Tensor):
        """The PAPA loss of a batch from `make_batch`, given the adapted and base predictions
        (and the previous round's, b["x0_ref"], when the trust region needs it)."""
        return papa_loss(
            x0_pred,
            x0_base,
            b["x0"],
            b["snr"],
            b["coef"],
            b["labels"],
            self.cfg,
            b["anchor"],
            x0_ref=b.get("x0_ref"),
            dislike_scale=b.get("dislike_scale", 1.0),
            dislike_on=b.get("dislike_on"),
        )

    def train(
        self,
        predict: Predict,
        x0_all: Tensor,
        labels_all: Tensor,
        groups_all: Tensor,
        sigmas: Tensor,
        kind: str,
        device,
        on_step: OnStep | None = None,
    ) -> None:
        """settings.steps guarded optimizer steps; `on_step(step, steps, stats)` after each."""
        start = time.perf_counter()
        restore_optimizer(self.optimizer, self.names, self._optimizer_state)
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.learning_rate
        params = list(self.params.values())
        need_ref = self.cfg.c_trust > 0 and not self.ref_is_base
        previous = [p.detach().clone() for p in params] if need_ref else []
        gen = torch.Generator().manual_seed(self.round_seed)
        steps = self.settings.steps
        for step in range(steps):
            b = self.make_batch(gen, x0_all, labels_all, groups_all, sigmas, kind, device)
            with torch.no_grad():
                x0_base = predict(b, False)
                if need_ref:
                    with swapped(params, previous):
                        b["x0_ref"] = predict(b, True).float()
            x0_pred = predict(b, True)
            loss, stats = self.compute_loss(b, x0_pred.float(), x0_base.float())
            self.passes += len(b["sigma"])  # forward+backward passes (as before the trust region)
            self.reference_passes += len(b["sigma"]) * (2 if need_ref else 1)  # no-grad forwards
            if guarded_step(self.optimizer, loss, stats["loss"], params):
                self.losses.append(stats["loss"])
                self._note_gradients(params)
            else:
                self.skipped_steps += 1
            self.last_stats = stats
            if on_step is not None:
                on_step(step + 1, steps, stats)
        self.seconds = time.perf_counter() - start
        self.check_coverage()

    def _note_gradients(self, params: list[Tensor]) -> None:
        if not params:
            return
        device = params[0].device
        flags = torch.stack(
            [
                (p.grad.detach() != 0).any().to(device)
                if p.grad is not None
                else torch.zeros((), dtype=torch.bool, device=device)
                for p in params
            ]
        )
        self._grad_seen = flags if self._grad_seen is None else self._grad_seen | flags

    def untrained_modules(self) -> list[str]:
        """Adapter modules none of whose tensors had a non-zero gradient in any step so far.

        Counted per module, not per tensor: with peft's start (up = 0) a fresh adapter's down
        factor has a zero gradient until up has moved, so a one-step round legitimately leaves
        it at zero."""
        seen = [False] * len(self.names) if self._grad_seen is None else self._grad_seen.tolist()
        return [m for m, idx in self.groups.items() if not any(seen[i] for i in idx)]

    def module_applied(self, name: str) -> bool:
        """Whether the backend ran this adapter module in the round. A backend that can tell
        (the ComfyUI host counts its weight wrappers' calls) overrides this; by default every
        module counts as applied (peft layers always run while enabled)."""
        return True

    def coverage_hint(self) -> str:
        """What to do when adapters were not applied; backends say how that happens there."""
        return (
            "The backend ran these layers without their adapter. Nothing was saved; report this "
            "with the model you used."
        )

    def check_coverage(self) -> None:
        """Fail loudly if an adapter module received no gradient in the whole round because the
        backend never applied it: it was neither trained nor applied, and saving it would pass an
        untrained layer off as trained.

        A module that ran but got no gradient is not a failure: its layer does not affect this
        model's prediction for these inputs (the digits model's cross-attention to its all-zero
        context token). Those are listed in `idle_modules`. Not checked when no step was taken
        (the caller reports the non-finite losses) or when nothing could move: no like yet and no
        adapter got any gradient (the objective is then zero by design, see `dislike_scale`)."""
        if not self.losses:
            return
        missing = self.untrained_modules()
        self.idle_modules = [m for m in missing if self.module_applied(m)]
        skipped = [m for m in missing if not self.module_applied(m)]
        if not skipped:
            return
        no_likes = not bool((self.replay.labels > 0).any())
        if no_likes and len(missing) == len(self.groups):
            return
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        raise AdapterCoverageError(
            f"{len(skipped)} of {len(self.groups)} adapter modules were never applied in this "
            f"round's {len(self.losses)} training steps ({shown}), so they were not trained and "
            f"would be saved as if they were. {self.coverage_hint()}"
        )
