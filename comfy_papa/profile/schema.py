"""The types of every JSON field a profile reads back from disk, checked before it is used.

Each `check_*` returns the value unchanged or raises `SchemaError` naming the field and saying
what it holds and what was expected; the store adds which file and what to do. A hand-edited or
restored manifest with `round: -1`, `1.7`, `null` or `"x"` must be reported, never acted on
(recovery decides which round folders are above the current round from it).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

SHA256 = re.compile(r"[0-9a-f]{64}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class SchemaError(ValueError):
    """A field of a file read from disk has the wrong type or value."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _fail(field: str, value: Any, expected: str) -> SchemaError:
    return SchemaError(f'field "{field}" is {_shown(value)}; expected {expected}')


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def count(value: Any, field: str) -> int:
    """A whole number >= 0 (a round number, a count)."""
    if not is_int(value) or value < 0:
        raise _fail(field, value, "a whole number >= 0")
    return value


def number(value: Any, field: str) -> float:
    if not is_number(value):
        raise _fail(field, value, "a finite number")
    return value


def text(value: Any, field: str, pattern: re.Pattern | None = None) -> str:
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        raise _fail(field, value, "text" if pattern is None else f"text matching {pattern.pattern}")
    return value


def mapping(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise _fail(field, value, "an object {...}")
    return value


def finite_stats(stats: dict) -> dict:
    """Statistics to store: a non-finite number (a diverged loss) is stored as null."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in stats.items()
    }


def finite_json(value: Any, field: str) -> Any:
    """Plain JSON with no NaN or infinity anywhere inside (settings, stats)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise SchemaError(f'field "{field}" is not plain finite JSON ({e})') from None
    return value


def check_manifest(data: Any, format_: str) -> dict:
    """manifest.json: the commit point. Optional fields are checked when present."""
    data = mapping(data, "(whole file)")
    if data.get("format") != format_:
        raise _fail("format", data.get("format"), repr(format_))
    if "round" not in data:
        raise SchemaError('field "round" is missing')
    count(data["round"], "round")
    text(data.get("name"), "name")
    fp = data.get("base_fingerprint")
    if fp is not None:
        text(fp, "base_fingerprint")
    for key in ("created", "updated"):
        if key in data:
            number(data[key], key)
    finite_json(mapping(data.get("settings", {}), "settings"), "settings")
    rounds = data.get("rounds", [])
    if not isinstance(rounds, list):
        raise _fail("rounds", rounds, "a list")
    for i, entry in enumerate(rounds):
        mapping(entry, f"rounds[{i}]")
        count(entry.get("round"), f"rounds[{i}].round")
        mapping(entry.get("stats", {}), f"rounds[{i}].stats")
    consumed = data.get("consumed_requests", [])
    if not isinstance(consumed, list):
        raise _fail("consumed_requests", consumed, "a list of request ids")
    for i, rid in enumerate(consumed):
        text(rid, f"consumed_requests[{i}]", TOKEN)
    for k, v in mapping(data.get("label_counts", {}), "label_counts").items():
        count(v, f"label_counts.{k}")
    if data.get("rollback_archive") is not None:
        text(data["rollback_archive"], "rollback_archive", PLAIN_NAME)
    requests = mapping(data.get("node_requests", {}), "node_requests")
    if "reset" in requests and not isinstance(requests["reset"], bool):
        raise _fail("node_requests.reset", requests["reset"], "true or false")
    if "rollback" in requests and (not is_int(requests["rollback"]) or requests["rollback"] < -1):
        raise _fail("node_requests.rollback", requests["rollback"], "a whole number >= -1")
    return data


def check_round_info(data: Any, round_: int, kinds: tuple[str, ...]) -> dict:
    """rounds/rNNNN/round.json: the round number and the checksum of each of its files."""
    data = mapping(data, "(whole file)")
    if count(data.get("round"), "round") != round_:
        raise _fail("round", data.get("round"), f"{round_} (the folder's round)")
    sums = mapping(data.get("sha256"), "sha256")
    dropped = data.get("optimizer") == "dropped"
    if "optimizer" in data and not dropped:
        raise _fail("optimizer", data["optimizer"], '"dropped" or no such field')
    adapter = data.get("adapter", "full")
    if adapter not in ("full", "fp16", "thinned"):
        raise _fail("adapter", adapter, '"fp16", "thinned" or no such field')
    for kind in kinds:
        if not (kind == "optimizer" and dropped) and not (
            kind == "adapter" and adapter == "thinned"
        ):
            text(sums.get(kind), f"sha256.{kind}", SHA256)
    replay = mapping(data.get("replay", {}), "replay")
    if "rows" in replay:
        count(replay["rows"], "replay.rows")
    if "from" in replay and not (is_int(replay["from"]) and 1 <= replay["from"] < round_):
        raise _fail("replay.from", replay["from"], f"a round from 1 to {round_ - 1}")
    finite_json(mapping(data.get("settings", {}), "settings"), "settings")
    mapping(data.get("stats", {}), "stats")
    return data


def check_history_row(row: Any) -> dict:
    """One line of history.jsonl."""
    row = mapping(row, "(line)")
    text(row.get("request_id"), "request_id")
    text(row.get("candidate"), "candidate")
    number(row.get("label"), "label")
    if row.get("round") is not None:
        count(row["round"], "round")
    if "ts" in row:
        number(row["ts"], "ts")
    return row


def check_pending_meta(meta: dict[str, str], stem: str, n_labels: int, n_latents: int) -> dict:
    """The metadata of pending/<request_id>.safetensors (strings, some of them JSON), parsed:
    request_id, round, ids, extra and sha256 (optional: older files have none)."""
    rid = text(meta.get("request_id"), "request_id", TOKEN)
    if rid != stem:
        raise _fail("request_id", rid, f"{stem!r} (the file's name)")
    round_text = text(meta.get("round"), "round")
    if not re.fullmatch(r"[0-9]{1,9}", round_text):
        raise _fail("round", round_text, "a whole number >= 0")
    try:
        ids = json.loads(text(meta.get("ids"), "ids"))
        extra = json.loads(meta.get("extra", "{}"))
    except ValueError as e:
        raise SchemaError(f'field "ids" or "extra" is not valid JSON ({e})') from None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _fail("ids", ids, "a list of candidate ids")
    if not len(ids) == n_labels == n_latents:
        raise SchemaError(
            f"{len(ids)} ids, {n_labels} labels and {n_latents} latents; expected one of each "
            "per candidate"
        )
    mapping(extra, "extra")
    if "sha256" in meta:
        text(meta["sha256"], "sha256", SHA256)
    return {"request_id": rid, "round": int(round_text), "ids": ids, "extra": extra}
