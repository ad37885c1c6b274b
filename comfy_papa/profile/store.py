"""A taste profile on disk, with one committed version per training round.

Layout of `<root>/<name>/`:
- `manifest.json`: the commit point (name, current round, base-model fingerprint, settings,
  label counts). Rewritten atomically after a round's files are complete.
- `history.jsonl`: every label, appended and fsynced the moment it arrives (one JSON per line).
- `pending/<request_id>.safetensors`: labelled candidates not yet trained on (latents, labels,
  conditioning), written when the labels arrive so that a crash during training loses nothing.
- `rounds/rNNNN/`: adapter, optimizer, replay and conditioning safetensors of round N plus
  `round.json` with their sha256 checksums. The replay file holds only the rows round N added to
  the round it extends (`round.json` "replay": {"rows", "from"}); only the newest round keeps its
  optimizer state (older ones: "optimizer": "dropped"). Adapters of rounds older than the newest
  RETAIN_FULL are kept in fp16 (`adapter.fp16.safetensors`, "adapter": "fp16") every THIN_EVERY-th
  round and thinned otherwise ("adapter": "thinned": no adapter; replay rows and conds kept). So a
  profile grows by a constant amount per round.
- `archive/`: rolled-back rounds, and round folders recovery found above the manifest's round
  (with a `REASON.txt`). A committed round is never deleted.
- `.lock`: the profile's lock file (profile/lock.py): every write and recovery holds it, across
  threads and processes.

Only safetensors and JSON are ever read from disk, every JSON field is type-checked
(profile/schema.py), and no symbolic link inside a profile is followed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..core.replay import ReplayBuffer
from ..core.settings import FinetuneSettings, SettingsError
from .atomic import (
    TMP_PREFIX,
    append_line_durable,
    append_lines_durable,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    fsync_dir,
)
from .faults import point
from .limits import check_request_latents
from .lock import profile_lock
from .names import ProfileError, validate_profile_name, validate_token
from .schema import (
    SchemaError,
    check_history_row,
    check_manifest,
    check_pending_meta,
    check_round_info,
    finite_json,
    finite_stats,
)

FORMAT = "comfy-papa-profile/1"
ROUND_FILES = ("adapter", "optimizer", "replay", "conds")
ROUND_NAME = re.compile(r"r([0-9]{4,9})")
DROPPED = "dropped"
# Retention of older rounds' adapters (applied when a round commits, finished on open): the
# newest RETAIN_FULL rounds keep their adapter as trained; older ones keep it in fp16 on disk
# (adapter.fp16.safetensors, loaded back in the training dtype), and of those only every
# THIN_EVERY-th round (round number divisible by it) keeps one at all: the others' adapter is
# removed and their round.json says "adapter": "thinned" (rolling back to such a round is
# refused, naming the nearest kept rounds). Replay rows, conditioning and labels are never
# thinned. The current round is never touched.
RETAIN_FULL = 10
THIN_EVERY = 10
FP16_FILE = "adapter.fp16.safetensors"
FP16_DTYPES_KEY = "__papa_fp16_from__"
REASON_FILE = "REASON.txt"


@dataclass
class RoundState:
    """Everything training needs to continue from a committed round."""

    round: int
    adapter: dict[str, torch.Tensor] = field(default_factory=dict)
    adapter_meta: dict[str, str] = field(default_factory=dict)
    optimizer: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_meta: dict[str, str] = field(default_factory=dict)
    replay: ReplayBuffer = field(default_factory=ReplayBuffer)
    conds: dict[str, torch.Tensor] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


@dataclass
class PendingFeedback:
    request_id: str
    round: int
    ids: list[str]
    labels: torch.Tensor
    latents: torch.Tensor
    cond: dict[str, torch.Tensor]
    meta: dict


def _locked(method: Callable) -> Callable:
    """Hold the profile's lock (threads and processes) and start from the manifest on disk:
    another process may have committed, rolled back or recorded since this object was opened."""

    def wrapper(self, *args, **kwargs):
        with profile_lock(self.dir).hold(self.name):
            self._refuse_symlinks()
            self.manifest = self._read_manifest()
            return method(self, *args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


def _disk_full(e: BaseException) -> bool:
    """ENOSPC, also as safetensors reports it (a SafetensorError, not an OSError)."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(e, SafetensorError) and "No space left" in str(e)


def _tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """Checksum of named tensors' bytes (pending files carry it in their metadata)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    # safetensors writes an unreadable header for empty tensors with metadata={}: pass None.
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta or None))


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path)), meta


class Profile:
    """One named profile folder. Open with `Profile.open(root, name)`."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = validate_profile_name(name)
        self.root = Path(root)
        self.dir = self.root / self.name
        self.manifest: dict = {}

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, name: str, create: bool = True) -> Profile:
        p = cls(root, name)
        p._refuse_link(p.dir)
        if not (p.dir / "manifest.json").exists():
            if not create:
                raise ProfileError(f"Profile {name!r} does not exist in {p.root}.")
            p.dir.mkdir(parents=True, exist_ok=True)
        with profile_lock(p.dir).hold(name):
            return p._open(create)

    def _open(self, create: bool) -> Profile:
        p, name = self, self.name
        p._refuse_symlinks()
        manifest = p.dir / "manifest.json"
        if not manifest.exists():
            if not create:
                raise ProfileError(f"Profile {name!r} does not exist in {p.root}.")
            p.manifest = {
                "format": FORMAT,
                "name": name,
                "round": 0,
                "base_fingerprint": None,
                "created": time.time(),
                "updated": time.time(),
                "settings": {},
                "rounds": [],
            }
            atomic_write_json(manifest, p.manifest)
        p.manifest = p._read_manifest()
        p._recover()
        return p

    def _read_manifest(self) -> dict:
        path = self.dir / "manifest.json"
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise ProfileError(
                f"Profile {self.name!r}: {path} is unreadable or corrupted ({e}). Nothing was "
                f"changed. The last complete round on disk is {self._last_round_on_disk()}; "
                "restore manifest.json from a backup (round folders above the backup's round "
                "are then moved to archive/, never deleted), or move the profile folder away and "
                "create it again."
            ) from e
        try:
            return check_manifest(data, FORMAT)
        except SchemaError as e:
            raise ProfileError(
                f"Profile {self.name!r}: {path} is not a valid comfy-papa manifest ({FORMAT}): "
                f"{e}. Nothing was changed. The last complete round on disk is "
                f'{self._last_round_on_disk()}; correct that field ("round" is the current '
                "round) or restore manifest.json from a backup; round folders above the "
                "manifest's round are moved to archive/, never deleted."
            ) from e

    def _write_manifest(self, manifest: dict) -> None:
        """Write the manifest (the commit point). Statistics of rounds committed before NaN
        was refused are stored as null: a file is never written with NaN in it."""
        manifest["rounds"] = [
            {**x, "stats": finite_stats(x.get("stats", {}))} for x in manifest.get("rounds", [])
        ]
        atomic_write_json(self.dir / "manifest.json", manifest)

    def _round_dirs(self) -> dict[int, Path]:
        """Round folders by number: `rNNNN` folders only (a user's `r0001.bak` is left alone)."""
        out = {}
        if self._rounds_dir().is_dir():
            for d in self._rounds_dir().iterdir():
                m = ROUND_NAME.fullmatch(d.name)
                if m and d.is_dir() and not d.is_symlink():
                    out[int(m.group(1))] = d
        return dict(sorted(out.items()))

    def _last_round_on_disk(self) -> int:
        complete = [r for r, d in self._round_dirs().items() if (d / "round.json").exists()]
        return max(complete, default=0)

    def _rounds_dir(self) -> Path:
        return self.dir / "rounds"

    # ---- symbolic links --------------------------------------------------------------------
    def _refuse_link(self, path: Path) -> None:
        if path.is_symlink():
            raise ProfileError(
                f"Profile {self.name!r}: {path} is a symbolic link (to {os.readlink(path)}). A "
                "profile's folders and files must be plain ones inside its folder, so that no "
                "write or recovery lands elsewhere. Nothing was changed; replace the link with a "
                "copy of what it points to, or move it out of the profile."
            )

    def _refuse_symlinks(self) -> None:
        """Every entry of the profile folder, at any depth, is a plain file or folder."""
        self._refuse_link(self.dir)
        folders = [self.dir]
        while folders:
            with os.scandir(folders.pop()) as entries:
                for e in entries:
                    if e.is_symlink():
                        self._refuse_link(Path(e.path))
                    elif e.is_dir():
                        folders.append(Path(e.path))

    # ---- recovery --------------------------------------------------------------------------
    def _recover(self) -> None:
        """Clean what a crash can leave: temp files, consumed pending files, a torn last history
        line (never acknowledged, since acknowledgement follows fsync). Round folders above the
        current round (a commit that crashed before its manifest, a rollback that crashed before
        archiving them, or a manifest restored from an older backup) move to archive/ with a
        reason file: a committed round is never deleted."""
        for tmp in list(self.dir.rglob(f"{TMP_PREFIX}*")):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        current = self.round
        above = [d for r, d in self._round_dirs().items() if r > current]
        if above:
            archive = self.manifest.get("rollback_archive")
            if archive:  # finish an interrupted rollback's move
                self._move_to_archive(above, self.dir / "archive" / archive)
            else:
                self._move_to_archive(
                    above,
                    self.dir / "archive" / f"recovered-{_stamp()}-above-r{current:04d}",
                    f"These round folders were found above round {current}, the round that "
                    f"manifest.json names, when profile {self.name!r} was opened: manifest.json "
                    "was restored from an older backup or edited, or a round's commit was "
                    "interrupted before its manifest was written. They were moved here, never "
                    "deleted. To make one current again, move the profile's later rounds out of "
                    'rounds/, move it back and set "round" in manifest.json to its number; or '
                    "load its adapter.safetensors as a LoRA.",
                )
        self._drop_optimizers(below=current, finish_only=True)
        self._retain_adapters(current, finish_only=True)
        consumed = set(self.manifest.get("consumed_requests", []))
        for f in self._pending_dir().glob("*.safetensors"):
            if f.stem in consumed:
                f.unlink()
        hist = self.dir / "history.jsonl"
        if hist.exists():
            data = hist.read_bytes()
            tail = data[data.rfind(b"\n") + 1 :]
            fixed = None
            if tail:
                try:
                    json.loads(tail)
                    fixed = data + b"\n"  # a whole line torn just before its newline: keep it
                except ValueError:
                    if tail.startswith(b"{"):  # a torn append; anything else is reported, kept
                        fixed = data[: len(data) - len(tail)]
            if fixed is not None:
                atomic_write(hist, lambda tmp: tmp.write_bytes(fixed))
        self._complete_history(consumed)

    def _move_to_archive(self, folders: list[Path], dest: Path, reason: str | None = None) -> None:
        """Move round folders into `dest` (a name already there gets a suffix); with a reason,
        write it beside them. Nothing is deleted."""
        dest.mkdir(parents=True, exist_ok=True)
        if reason is not None:
            atomic_write_bytes(dest / REASON_FILE, (reason + "\n").encode())
        for d in folders:
            target, i = dest / d.name, 1
            while target.exists():
                i += 1
                target = dest / f"{d.name}-{i}"
            os.replace(d, target)
        fsync_dir(dest)
        fsync_dir(self._rounds_dir())

    def _complete_history(self, consumed: set[str]) -> None:
        """A crash between saving a pending file and its last history line leaves the request
        half in the history: append its missing lines (the pending file is the commit point)."""
        files = [f for f in self._pending_dir().glob("*.safetensors") if f.stem not in consumed]
        if not files:
            return
        hist = self.dir / "history.jsonl"
        have = set()
        if hist.exists():
            for line in hist.read_bytes().splitlines():
                try:
                    row = check_history_row(json.loads(line))
                    have.add((row["request_id"], row["candidate"]))
                except ValueError:  # JSONDecodeError, UnicodeDecodeError, SchemaError
                    return  # a corrupted history is reported by history(), never appended to
        for f in files:
            try:
                p = self._load_pending(f)
            except ProfileError:
                continue  # pending() reports the corrupted file
            for cid, lab in zip(p.ids, p.labels.tolist(), strict=True):
                if (p.request_id, cid) not in have:
                    line = {"ts": f.stat().st_mtime, "request_id": p.request_id, "round": p.round}
                    line.update(candidate=cid, label=float(lab), recovered=True)
                    append_line_durable(hist, json.dumps(line))

    # ---- identity ------------------------------------------------------------------------
    @property
    def round(self) -> int:
        return int(self.manifest["round"])

    @property
    def settings(self) -> FinetuneSettings:
        """The current round's training settings, read back from what it recorded
        (`FinetuneSettings.from_dict`; the defaults before the first round)."""
        try:
            return FinetuneSettings.from_dict(self.manifest.get("settings", {}))
        except SettingsError as e:
            raise ProfileError(
                f"Profile {self.name!r}: the settings recorded for round {self.round} in "
                f"manifest.json cannot be read: {e} Correct that value, or roll back to an "
                "earlier round."
            ) from e

    @property
    def version(self) -> str:
        """Changes whenever a round is committed, rolled back or reset (node cache key)."""
        return f"{self.name}:{self.round}:{self.manifest.get('updated', 0)}"

    def check_base(self, fingerprint: str) -> None:
        expected = self.manifest.get("base_fingerprint")
        if expected and expected != fingerprint:
            raise ProfileError(
                f"Profile {self.name!r} was trained on another base model (fingerprint "
                f"{expected}, this MODEL is {fingerprint}). Connect the checkpoint it was made "
                "with, or use a new profile name for this model."
            )

    # ---- feedback ------------------------------------------------------------------------
    def _pending_dir(self) -> Path:
        return self.dir / "pending"

    @_locked
    def record_feedback(
        self,
        request_id: str,
        round_: int,
        ids: list[str],
        labels: list[float],
        latents: torch.Tensor,
        cond: dict[str, torch.Tensor] | None = None,
        extra: dict | None = None,
    ) -> None:
        """Persist one round's labels: the tensors to pending/, then one history line per label.

        When this returns, the labels survive a crash; the next fine-tune trains on them.
        """
        validate_token(request_id)
        if len(ids) != len(labels) or latents.shape[0] != len(ids):
            raise ProfileError(
                f"Feedback has {len(ids)} ids, {len(labels)} labels and {latents.shape[0]} "
                "latents; give exactly one label per candidate."
            )
        check_request_latents(latents, f"Profile {self.name!r}")  # before anything is written
        if (
            request_id in self.manifest.get("consumed_requests", [])
            or (self._pending_dir() / f"{request_id}.safetensors").exists()
        ):
            raise ProfileError(f"Feedback for request {request_id} was already recorded.")
        if not torch.isfinite(latents).all():
            raise ProfileError(
                f"Profile {self.name!r}: the candidates' latents contain non-finite values (NaN "
                "or inf); nothing was recorded. Check the sampler's inputs and sample again."
            )
        expected = self._latent_shape()
        if expected is not None and tuple(latents.shape[1:]) != expected:
            raise ProfileError(
                f"Profile {self.name!r} holds latents of shape {expected}; these candidates are "
                f"{tuple(latents.shape[1:])} (another image size or model). Nothing was "
                "recorded; sample at the profile's size, or use a new profile name."
            )
        self._pending_dir().mkdir(exist_ok=True)
        tensors = {"latents": latents, "labels": torch.tensor(labels, dtype=torch.float32)}
        tensors.update({f"cond.{k}": v for k, v in (cond or {}).items()})
        meta = {"request_id": request_id, "round": str(round_), "ids": json.dumps(ids)}
        meta["extra"] = json.dumps(extra or {})
        meta["sha256"] = _tensors_sha256(tensors)
        pending = self._pending_dir() / f"{request_id}.safetensors"
        now = time.time()
        lines = []
        for cid, lab in zip(ids, labels, strict=True):
            line = {"ts": now, "request_id": request_id, "round": round_, "candidate": cid}
            line["label"] = float(lab)
            lines.append(json.dumps(line))
        try:
            try:
                _save_tensors(pending, tensors, meta)
                point("feedback:pending-saved")
                append_lines_durable(self.dir / "history.jsonl", lines)
            except BaseException:
                pending.unlink(missing_ok=True)  # all or nothing: the answer can be retried
                raise
        except (OSError, SafetensorError) as e:
            if not _disk_full(e):
                raise
            raise ProfileError(
                f"Disk full: the labels of request {request_id} could not be saved in "
                f"{self.dir} ({e}). Nothing was recorded; free some space and answer again."
            ) from e
        point("feedback:history-appended")

    def _latent_shape(self) -> tuple[int, ...] | None:
        """Per-candidate latent shape of what the profile already holds (None when empty)."""
        from safetensors import safe_open

        files, r = [], self.round
        while r and len(files) < 1000:  # the current round's replay and the rounds it extends
            files.append(self.round_dir(r) / "replay.safetensors")
            try:
                r = json.loads((self.round_dir(r) / "round.json").read_bytes())["replay"]["from"]
            except (OSError, ValueError, KeyError, TypeError):
                break
        files += sorted(self._pending_dir().glob("*.safetensors"))
        for f in files:
            try:
                with safe_open(str(f), framework="pt") as h:
                    if "latents" in h.keys():
                        return tuple(h.get_slice("latents").get_shape()[1:])
            except (SafetensorError, OSError):
                continue  # the loaders report corrupted files with their own message
        return None

    def _load_pending(self, f: Path) -> PendingFeedback:
        """One pending file, its checksum and metadata checked; ProfileError names the file."""
        try:
            tensors, meta = _load_tensors(f)
            labels, latents = tensors["labels"], tensors["latents"]
            if labels.dim() != 1 or latents.dim() < 2:
                raise SchemaError(
                    f"labels of shape {tuple(labels.shape)} and latents of shape "
                    f"{tuple(latents.shape)}; expected one label and one latent per candidate"
                )
            info = check_pending_meta(meta, f.stem, labels.shape[0], latents.shape[0])
            if "sha256" in meta and meta["sha256"] != _tensors_sha256(tensors):
                raise ValueError("checksum mismatch")
        except (SafetensorError, OSError, KeyError, ValueError) as e:  # SchemaError too
            raise ProfileError(
                f"Profile {self.name!r}: pending feedback file {f} is corrupted ({e}). "
                "Nothing was changed; move the file away to continue without it."
            ) from e
        cond = {k[5:]: v for k, v in tensors.items() if k.startswith("cond.")}
        return PendingFeedback(
            info["request_id"], info["round"], info["ids"], labels, latents, cond, info["extra"]
        )

    @_locked
    def pending(self) -> list[PendingFeedback]:
        files = sorted(self._pending_dir().glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
        return [self._load_pending(f) for f in files]

    @_locked
    def recorded(self, request_id: str) -> dict[str, float]:
        """The labels recorded for one request, by candidate id (empty: none recorded)."""
        return {
            row["candidate"]: row["label"]
            for row in self.history()
            if row["request_id"] == request_id
        }

    @_locked
    def history(self) -> list[dict]:
        path = self.dir / "history.jsonl"
        if not path.exists():
            return []
        rows = []
        for i, line in enumerate(path.read_bytes().splitlines(), 1):
            try:
                rows.append(check_history_row(json.loads(line)))
            except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, SchemaError
                raise ProfileError(
                    f"Profile {self.name!r}: {path} line {i} is corrupted ({e}). Nothing was "
                    "changed; repair or remove that line."
                ) from e
        return rows

    # ---- rounds --------------------------------------------------------------------------
    def round_dir(self, r: int) -> Path:
        return self._rounds_dir() / f"r{r:04d}"

    @_locked
    def load_round(self, r: int | None = None) -> RoundState:
        """The committed state of round r (default: current); round 0 is the empty start. A
        round whose optimizer state was dropped (every round but the newest) gives an empty
        one: training from it restarts the optimizer's moments."""
        r = self.round if r is None else r
        if r == 0:
            return RoundState(0)
        info = self._round_info(r)
        adapter, adapter_meta = self._load_adapter(r, info)
        conds, _ = self._round_file(r, info, "conds")
        optimizer, optimizer_meta = {}, {}
        if info.get("optimizer") != DROPPED:
            optimizer, optimizer_meta = self._round_file(r, info, "optimizer")
        return RoundState(
            r,
            adapter=adapter,
            adapter_meta=adapter_meta,
            optimizer=optimizer,
            optimizer_meta=optimizer_meta,
            replay=self._load_replay(r, info),
            conds=conds,
            info=info,
        )

    def _round_info(self, r: int) -> dict:
        d = self.round_dir(r)
        try:
            return check_round_info(json.loads((d / "round.json").read_bytes()), r, ROUND_FILES)
        except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError, SchemaError
            raise ProfileError(
                f"Profile {self.name!r}: {d / 'round.json'} is missing or corrupted ({e}). "
                f"Nothing was changed; roll back to round {r - 1} with the PAPA Profile node."
            ) from e

    def _load_adapter(self, r: int, info: dict) -> tuple[dict, dict]:
        """Round r's adapter in its training dtype; a thinned round's is refused."""
        kind = info.get("adapter", "full")
        if kind == "thinned":
            kept = self._kept_rounds()
            lower = [n for n in kept if n < r]
            higher = [n for n in kept if n > r]
            near = " and ".join(
                f"round {n}"
                for n in ([lower[-1]] if lower else []) + ([higher[0]] if higher else [])
            )
            raise ProfileError(
                f"Profile {self.name!r}: round {r}'s adapter was thinned by the retention "
                f"setting (older rounds keep an adapter only every {THIN_EVERY}th round; its "
                "labels and replay rows are all kept), so it cannot be loaded or rolled back to. "
                f"Nothing was changed. The nearest rounds with an adapter: {near or 'none'}."
            )
        if kind != "fp16":
            return self._round_file(r, info, "adapter")
        tensors, meta = self._round_file(r, info, "adapter", FP16_FILE)
        meta = dict(meta)
        dtypes = json.loads(meta.pop(FP16_DTYPES_KEY, "{}"))
        for k, name in dtypes.items():
            tensors[k] = tensors[k].to(getattr(torch, name))
        return tensors, meta

    def _kept_rounds(self) -> list[int]:
        """Rounds on disk whose adapter loads (not thinned)."""
        out = []
        for n, d in self._round_dirs().items():
            try:
                info = json.loads((d / "round.json").read_bytes())
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("adapter") != "thinned" and n <= self.round:
                out.append(n)
        return out

    def _round_file(self, r: int, info: dict, kind: str, name: str = "") -> tuple[dict, dict]:
        path = self.round_dir(r) / (name or f"{kind}.safetensors")
        try:
            if _sha256(path) != info["sha256"][kind]:
                raise ValueError("checksum mismatch")
            return _load_tensors(path)
        except (OSError, ValueError, KeyError, SafetensorError) as e:
            raise ProfileError(
                f"Profile {self.name!r}: {path} is corrupted ({e}). Nothing was changed; "
                f"roll back to round {r - 1} with the PAPA Profile node's rollback option."
            ) from e

    def _load_replay(self, r: int, info: dict) -> ReplayBuffer:
        """Round r's replay buffer. Older rounds store it whole; a round committed since stores
        only the rows it added to round `replay.from`'s (the buffer only ever grows), so the
        replay costs its size once on disk, not once per round."""
        chain, n, rows = [], r, info.get("replay", {}).get("rows")
        while True:
            try:
                chain.append(ReplayBuffer.from_safetensors(*self._round_file(n, info, "replay")))
            except ValueError as e:  # not a replay file (ProfileError is reported as it is)
                if isinstance(e, ProfileError):
                    raise
                raise ProfileError(
                    f"Profile {self.name!r}: {self.round_dir(n) / 'replay.safetensors'} is not a "
                    f"replay file ({e}). Nothing was changed; roll back to round {n - 1}."
                ) from e
            base = info.get("replay", {}).get("from")
            if base is None:
                break
            n, info = base, self._round_info(base)
        replay = chain.pop()
        for delta in reversed(chain):
            if len(delta):
                replay.add(delta.latents, delta.labels, delta.rounds, delta.ids, delta.cond)
        if rows is not None and len(replay) != rows:
            raise ProfileError(
                f"Profile {self.name!r}: the replay of round {r} has {len(replay)} rows, its "
                f"round.json says {rows} (a round it builds on was replaced by hand?). Nothing "
                f"was changed; roll back to round {r - 1}."
            )
        return replay

    def _replay_ids(self, r: int) -> list[str] | None:
        """The candidate ids of round r's replay, from the files' metadata (None: unreadable)."""
        from safetensors import safe_open

        ids: list[str] = []
        try:
            while r:
                with safe_open(str(self.round_dir(r) / "replay.safetensors"), framework="pt") as f:
                    ids = json.loads((f.metadata() or {})["ids"]) + ids
                info = json.loads((self.round_dir(r) / "round.json").read_bytes())
                base = info.get("replay", {}).get("from") or 0
                if not (isinstance(base, int) and 0 <= base < r):
                    return None
                r = base
        except (SafetensorError, OSError, ValueError, KeyError, AttributeError):
            return None
        return ids

    def _replay_to_store(self, replay: ReplayBuffer) -> tuple[ReplayBuffer, dict]:
        """What a new round stores of its replay: the rows added to the current round's (when it
        extends it, as every backend's round does), else the whole buffer; and round.json's
        `replay` entry."""
        entry = {"rows": len(replay)}
        prev = self._replay_ids(self.round) if self.round else None
        if prev is None or replay.ids[: len(prev)] != prev:
            return replay, entry
        n, delta = len(prev), ReplayBuffer()
        if len(replay) > n:
            rows = replay.latents[n:], replay.labels[n:], replay.rounds[n:], replay.ids[n:]
            delta.add(*rows, {k: v[n:] for k, v in replay.cond.items()})
        return delta, {**entry, "from": self.round}

    def _drop_optimizers(self, below: int, finish_only: bool = False) -> None:
        """Optimizer state is kept for the newest round only (it is twice the adapter's size):
        an older round's round.json records the drop first, then its file goes. With
        `finish_only`, only finish drops a crash interrupted. A round whose round.json does not
        read is left as it is (loading it reports it)."""
        for n, d in self._round_dirs().items():
            if n >= below:
                continue
            try:
                info = check_round_info(json.loads((d / "round.json").read_bytes()), n, ROUND_FILES)
            except (OSError, ValueError):
                continue
            try:  # housekeeping after the commit point: a failure must not fail the commit
                if info.get("optimizer") != DROPPED:
                    if finish_only:
                        continue
                    info["optimizer"] = DROPPED
                    info["sha256"].pop("optimizer", None)
                    info["stats"] = finite_stats(info.get("stats", {}))
                    atomic_write_json(d / "round.json", info)
                    point(f"commit:optimizer-dropped-{d.name}")
                (d / "optimizer.safetensors").unlink(missing_ok=True)
            except (OSError, ValueError):
                continue  # the next commit tries again

    def _retain_adapters(self, current: int, finish_only: bool = False) -> None:
        """Apply the retention setting (RETAIN_FULL, THIN_EVERY) to rounds below `current`.
        Each step is crash-safe and can be redone: fp16 file written atomically, then round.json
        switched to it atomically, then the full file removed; a thinned round's round.json
        records the thinning before its file goes. With `finish_only` (on open), only finish
        steps a crash interrupted. Housekeeping after the commit point: a failure is left for
        the next commit."""
        for n, d in self._round_dirs().items():
            if n >= current or n > current - RETAIN_FULL:
                continue
            try:
                info = check_round_info(json.loads((d / "round.json").read_bytes()), n, ROUND_FILES)
            except (OSError, ValueError):
                continue
            try:
                self._retain_one(n, d, info, finish_only)
            except (OSError, ValueError, SafetensorError, ProfileError):
                continue  # the next commit tries again

    def _retain_one(self, n: int, d: Path, info: dict, finish_only: bool) -> None:
        full, half = d / "adapter.safetensors", d / FP16_FILE
        kind = info.get("adapter", "full")
        if kind == "full":
            if finish_only:
                half.unlink(missing_ok=True)  # an fp16 copy round.json does not name yet
                return
            if n % THIN_EVERY:
                info["adapter"] = "thinned"
                info["sha256"].pop("adapter", None)
                info["stats"] = finite_stats(info.get("stats", {}))
                atomic_write_json(d / "round.json", info)
                point(f"retain:thinned-{d.name}")
                kind = "thinned"
            else:
                tensors, meta = self._round_file(n, info, "adapter")
                dtypes = {
                    k: str(v.dtype).removeprefix("torch.")
                    for k, v in tensors.items()
                    if v.is_floating_point() and v.dtype != torch.float16
                }
                half_t = {k: (v.half() if k in dtypes else v) for k, v in tensors.items()}
                if not all(v.isfinite().all() for k, v in half_t.items() if k in dtypes):
                    return  # out of fp16's range: kept as it is
                _save_tensors(half, half_t, {**meta, FP16_DTYPES_KEY: json.dumps(dtypes)})
                point(f"retain:fp16-written-{d.name}")
                info["adapter"] = "fp16"
                info["sha256"]["adapter"] = _sha256(half)
                info["stats"] = finite_stats(info.get("stats", {}))
                atomic_write_json(d / "round.json", info)
                point(f"retain:fp16-{d.name}")
                kind = "fp16"
        if kind == "fp16":
            full.unlink(missing_ok=True)
        elif kind == "thinned":
            full.unlink(missing_ok=True)
            half.unlink(missing_ok=True)

    @_locked
    def commit_round(
        self,
        state: RoundState,
        base_fingerprint: str,
        settings: dict,
        consumed_requests: list[str],
        stats: dict | None = None,
    ) -> None:
        """Write round `state.round` (= current + 1) completely, then move the manifest to it."""
        r = state.round
        try:
            finite_json(settings, "settings")
        except SchemaError as e:
            raise ProfileError(
                f"Profile {self.name!r}: round {r}'s settings are not plain finite numbers ({e}); "
                f"it was not saved and the profile stays at round {self.round}. Set every "
                "setting to a finite number (no NaN or inf) and queue again."
            ) from e
        stats = finite_stats(stats or {})
        bad = [
            k for k, v in state.adapter.items() if v.is_floating_point() and not v.isfinite().all()
        ]
        if bad:
            raise ProfileError(
                f"Profile {self.name!r}: round {r}'s adapter has non-finite values in {bad[:3]}; "
                f"it was not saved and the profile stays at round {self.round}."
            )
        try:
            self._commit_round(state, base_fingerprint, settings, consumed_requests, stats)
        except (OSError, SafetensorError) as e:
            if not _disk_full(e):
                raise
            raise ProfileError(
                f"Disk full while saving round {r} of profile {self.name!r} in {self.dir} ({e}). "
                f"The profile is still at round {self.round}; free some space and queue again."
            ) from e

    def _commit_round(self, state, base_fingerprint, settings, consumed_requests, stats) -> None:
        r = state.round
        if r != self.round + 1:
            raise ProfileError(
                f"Profile {self.name!r} moved to round {self.round} while round {r} was being "
                "trained (another run?). Queue the fine-tune again."
            )
        self.check_base(base_fingerprint)
        self._rounds_dir().mkdir(exist_ok=True)
        tmp = self._rounds_dir() / f"{TMP_PREFIX}r{r:04d}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        point("commit:tmpdir-created")
        try:
            replay, replay_entry = self._replay_to_store(state.replay)
            replay_t, replay_meta = replay.to_safetensors()
            parts = {
                "adapter": (state.adapter, state.adapter_meta),
                "optimizer": (state.optimizer, state.optimizer_meta),
                "replay": (replay_t, replay_meta),
                "conds": (state.conds, {}),
            }
            sums = {}
            for kind, (tensors, meta) in parts.items():
                path = tmp / f"{kind}.safetensors"
                _save_tensors(path, tensors, {k: str(v) for k, v in meta.items()})
                sums[kind] = _sha256(path)
            info = {"round": r, "sha256": sums, "settings": settings, "stats": stats or {}}
            info["replay"] = replay_entry
            atomic_write_json(tmp / "round.json", info)
            final = self.round_dir(r)
            if final.exists():  # recovery moved every stray round away; one appeared since
                self._move_to_archive(
                    [final],
                    self.dir / "archive" / f"replaced-{_stamp()}-r{r:04d}",
                    f"A folder {final.name} was in rounds/ when round {r} was committed; it was "
                    "moved here, never deleted.",
                )
            os.replace(tmp, final)
            point("commit:round-renamed")
            fsync_dir(self._rounds_dir())
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        manifest = dict(self.manifest)
        manifest["round"] = r
        manifest["base_fingerprint"] = base_fingerprint
        manifest["settings"] = settings
        manifest["updated"] = time.time()
        manifest["consumed_requests"] = sorted(
            set(manifest.get("consumed_requests", [])) | set(consumed_requests)
        )
        manifest["label_counts"] = state.replay.label_counts()
        manifest["rounds"] = [*manifest.get("rounds", []), {"round": r, "stats": stats or {}}]
        manifest.pop("rollback_archive", None)
        self._write_manifest(manifest)
        self.manifest = manifest
        point("commit:manifest-written")
        for i, rid in enumerate(consumed_requests):
            (self._pending_dir() / f"{rid}.safetensors").unlink(missing_ok=True)
            point(f"commit:pending-removed-{i}")
        self._drop_optimizers(below=r)
        self._retain_adapters(r)

    @_locked
    def rollback(self, r: int) -> None:
        """Make round r current; later rounds move to archive/ (nothing is deleted)."""
        if not 0 <= r <= self.round:
            raise ProfileError(
                f"Profile {self.name!r} has rounds 0..{self.round}; cannot roll back to {r}."
            )
        if r == self.round:
            return
        if r > 0:
            self.load_round(r)  # refuse to roll back onto a corrupted round
        stamp = time.strftime("%Y%m%d-%H%M%S")
        archive, i = self.dir / "archive" / f"rollback-{stamp}-from-r{self.round:04d}", 1
        while archive.exists():
            i += 1
            archive = archive.with_name(f"rollback-{stamp}-from-r{self.round:04d}-{i}")
        archive.mkdir(parents=True)
        manifest = dict(self.manifest)
        manifest["round"] = r
        manifest["updated"] = time.time()
        manifest["rounds"] = [x for x in manifest.get("rounds", []) if x["round"] <= r]
        manifest["rollback_archive"] = archive.name  # recovery finishes an interrupted move
        if r == 0:
            manifest["base_fingerprint"] = None
        self._write_manifest(manifest)
        self.manifest = manifest
        point("rollback:manifest-written")
        for n, d in self._round_dirs().items():
            if n > r:
                os.replace(d, archive / d.name)
                point(f"rollback:archived-{d.name}")

    @_locked
    def set_node_requests(self, requests: dict) -> None:
        """Remember the Profile node's last rollback/reset values (one-shot actions)."""
        if self.manifest.get("node_requests") == requests:
            return
        manifest = dict(self.manifest)
        manifest["node_requests"] = requests
        self._write_manifest(manifest)
        self.manifest = manifest

    def reset(self) -> None:
        """Start again from the base model; every round is kept in archive/."""
        self.rollback(0)
