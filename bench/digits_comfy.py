"""The digits benchmark's ComfyUI backend: the pack's own nodes, in-process, one (method, seed).

PAPA and EPAPA run exactly the nodes of the demo graph (PAPA Digits Demo Loader -> PAPA Profile
-> PAPA Apply Profile -> PAPA Candidate Sampler -> PAPA Labels -> PAPA Fine-tune), called through
their V3 `execute` classmethods under inference mode as ComfyUI's executor calls them. The
baselines (D3PO, Diffusion-KTO) share every node but Fine-tune: they call
`comfy_papa.host.rounds.finetune` with their own round class (bench/digits_baselines.py), since the
node has no round-class input. Best-of-N never trains.

Profiles live in `<workdir>/models/papa_profiles`, registered with ComfyUI's folder_paths before
the first profile is opened.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .digits_baselines import ROUNDS, configured, has_pairs

_BOOTED: str | None = None


def _boot(device: str, workdir: Path) -> None:
    """Import ComfyUI once per process, silence the server messages the fine-tune node sends, and
    point the profiles folder at `workdir`."""
    global _BOOTED
    if _BOOTED is not None:
        if _BOOTED != device:
            raise RuntimeError(f"ComfyUI was booted for {_BOOTED}; one device per process.")
        return
    from .comfy_inproc import boot

    boot(device)
    # As main.py does: ComfyUI's utils package before nodes.py (imported by server) puts comfy/
    # (with its utils.py) first on sys.path.
    import utils.install_util  # noqa: F401

    # isort: split
    import comfy.utils
    import folder_paths
    import server  # noqa: F401  (the nodes import it; loaded here, in main.py's order)

    comfy.utils.PROGRESS_BAR_ENABLED = False  # parallel workers share one terminal
    root = workdir / "models" / "papa_profiles"
    root.mkdir(parents=True, exist_ok=True)
    folder_paths.add_model_folder_path("papa_profiles", str(root), is_default=True)
    _BOOTED = device


class ComfyDigits:
    """One (method, seed) run of the benchmark on the pack's ComfyUI nodes (see DigitsBackend in
    bench/digits.py). `settings`: steps, sampler, scheduler, finetune (this method's dict)."""

    def __init__(self, method: str, seed: int, workdir: Path, device: str, settings: dict):
        _boot(device, Path(workdir))
        from comfy_papa.nodes.digits import DigitsDemoLoader

        self.method = method
        self.seed = seed
        self.settings = settings
        self.finetune_kw = dict(settings.get("finetune", {}))
        self.profile_name = f"digits-{method}-{seed}"
        with torch.inference_mode():
            self.base, self.vae, self.cond, self.latent = DigitsDemoLoader.execute(
                batch_size=1
            ).args
        self.model = self._current_model()
        self._last = None
        self._held_rounds: list[tuple[list[float], int]] = []

    def _profile(self):
        from comfy_papa.nodes.profile import ProfileNode

        return ProfileNode.execute(self.profile_name, rollback_to_round=-1, reset=False).args[0]

    def _current_model(self):
        """What a queued graph samples from: Apply Profile on the profile's current round."""
        from comfy_papa.nodes.profile import ApplyProfile

        if self.method == "bestofn":
            return self.base
        with torch.inference_mode():
            return ApplyProfile.execute(self.base, self._profile(), 1.0).args[0]

    def _sample(self, n: int, seed: int):
        from comfy_papa.nodes.sampler import CandidateSampler

        with torch.inference_mode():
            latents, cands = CandidateSampler.execute(
                self.model,
                self.cond,
                self.cond,
                self.latent,
                n,
                seed,
                self.settings["steps"],
                1.0,
                self.settings["sampler"],
                self.settings["scheduler"],
            ).args
            images = self.vae.decode(latents["samples"])
        return images.float().mean(dim=-1).cpu(), cands

    def candidates(self, n: int, seed: int) -> torch.Tensor:
        gray, self._last = self._sample(n, seed)
        return gray

    def evaluate(self, n: int, seed: int) -> torch.Tensor:
        return self._sample(n, seed)[0]

    def feedback(self, labels: list[int]) -> dict:
        if self._last is None:
            raise RuntimeError("feedback() before candidates()")
        if self.method == "bestofn":
            return {"seconds": 0.0, "passes": 0}
        from comfy_papa.host.profiles import open_profile
        from comfy_papa.nodes.labels import Labels

        text = " ".join({1: "+", -1: "-", 0: "0"}[int(v)] for v in labels)
        with torch.inference_mode():
            profile = self._profile()
            fb = Labels.execute(self._last, text, profile).args[0]
            if self.method in ("papa", "epapa"):
                self._finetune_node(fb, profile)
            elif not self._baseline(fb, profile):
                return {"seconds": 0.0, "passes": 0, "skipped": "no like/dislike pair yet"}
        stats = open_profile(self.profile_name, create=False).manifest["rounds"][-1]["stats"]
        self.model = self._current_model()
        out = {"seconds": float(stats["seconds"]), "passes": int(stats["passes"])}
        if stats.get("drift") is not None:
            out["drift"] = float(stats["drift"])  # the last step's distance from the base model
        return out

    def _finetune_node(self, fb, profile) -> None:
        from comfy_papa.core.settings import FinetuneSettings
        from comfy_papa.nodes.finetune import FineTune

        # The node's own inputs, and every other setting as its `options` input (what a PAPA
        # Training Options node passes; the benchmark's --set reaches settings that node lacks).
        options = dict(self.finetune_kw)
        steps = options.pop("steps", FinetuneSettings().steps)
        method = "EPAPA" if self.method == "epapa" else "PAPA"
        options.pop("method", None)
        FineTune.execute(self.base, fb, profile, method, steps, self.seed, options=options)

    def _baseline(self, fb, profile) -> bool:
        """One baseline round through `finetune`; False (labels kept, nothing trained) when D3PO
        has no same-round like/dislike pair yet."""
        from comfy_papa.core.settings import FinetuneSettings
        from comfy_papa.host.profiles import open_profile
        from comfy_papa.host.rounds import finetune, record_if_new

        p = open_profile(self.profile_name, create=False)
        self._held_rounds.append((list(fb.labels), fb.round))
        if self.method == "d3po":
            labels = [v for lab, _ in self._held_rounds for v in lab]
            rounds = [r for lab, r in self._held_rounds for _ in lab]
            if not has_pairs(labels, rounds):
                record_if_new(p, fb)
                return False
        kw = dict(self.finetune_kw, seed=self.seed)
        params = {k: kw.pop(k) for k in ROUNDS[self.method].PARAMS if k in kw}
        if "sampling_steps" in params and params["sampling_steps"] is None:
            params["sampling_steps"] = self.settings["steps"]  # D3PO: the candidates' sampler
        round_cls = configured(ROUNDS[self.method], **params)
        finetune(self.base, fb, p, FinetuneSettings(**kw), round_cls=round_cls)
        return True
