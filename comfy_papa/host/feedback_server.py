"""The HTTP routes that answer picker requests, a thin layer over one `PickerRegistry`.

The picker node (worker thread) opens a request in `REGISTRY` and waits on it; the routes (aiohttp,
main thread) answer or cancel it (the state machine is picker_registry's). Labels are written to
the profile inside the POST handler, before the answer reaches the node and before the 200 goes
out: the 200 is the artist's receipt.

Routes (also under /api): GET /papa/pending, POST /papa/feedback, POST /papa/cancel.

Each request belongs to the client id its prompt was queued with (picker_registry): GET
/papa/pending?client_id=X lists only X's requests (without client_id: only the requests queued
without one), and POST /papa/feedback or /papa/cancel must carry the same `"client_id"` in its
body (none for a request queued without one), else 403 and nothing changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import comfy.model_management
import folder_paths
import torch
from aiohttp import web
from PIL import Image
from server import PromptServer

from ..feedback import LABELS
from ..profile.faults import point
from ..profile.names import ProfileError
from .conditioning import conditioning_to_tensors
from .picker_registry import Answer, NotOpen, NotYours, PendingRequest, PickerRegistry
from .profiles import open_profile

MAX_BODY = 64 * 1024
PREVIEW_SUBFOLDER = "papa_picker"
REGISTRY = PickerRegistry()  # the server's one registry: the node opens, the routes answer


def new_request_id() -> str:
    return uuid.uuid4().hex


def finish_request(req: PendingRequest, reason: str) -> None:
    """Always called by the node when it stops waiting (answered or not); tells the panel."""
    REGISTRY.finish(req, reason)
    PromptServer.instance.send_sync(
        "papa.request_done",
        {"request_id": req.request_id, "reason": reason},
        req.payload.get("client_id"),
    )


def wait_for_answer(req: PendingRequest, timeout_s: float) -> Answer | None:
    """Block until answered (Answer), timed out (None), cancelled or interrupted (raise)."""
    return REGISTRY.wait(
        req, timeout_s, comfy.model_management.throw_exception_if_processing_interrupted
    )


def save_previews(images: torch.Tensor, request_id: str) -> list[dict[str, str]]:
    """Write each candidate as a PNG into ComfyUI's temp dir; /view serves it (type=temp)."""
    folder = Path(folder_paths.get_temp_directory()) / PREVIEW_SUBFOLDER
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i, img in enumerate(images):
        arr = (img[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        name = f"{request_id}_{i:02d}.png"
        Image.fromarray(arr).save(folder / name, compress_level=1)
        refs.append({"filename": name, "subfolder": PREVIEW_SUBFOLDER, "type": "temp"})
    return refs


# ---- request bodies ------------------------------------------------------------------------
class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, read with a cap; BadRequest(400/413) says what was wrong."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadRequest(413, f"Body is {request.content_length} bytes; the limit is {MAX_BODY}.")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(413, f"Body is larger than the limit of {MAX_BODY} bytes.")
    try:
        body = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f"Body is not valid JSON ({e}).") from None
    except RecursionError:  # '[[[[...' within the size cap: nested deeper than the parser goes
        raise BadRequest(400, "Body is not valid JSON (nested too deeply).") from None
    if not isinstance(body, dict):
        raise BadRequest(400, 'Body must be a JSON object like {"request_id": "...", ...}.')
    rid = body.get("request_id")
    if not isinstance(rid, str) or not rid:
        raise BadRequest(400, '"request_id" is missing or not a string.')
    return body


def body_client_id(body: dict[str, Any]) -> str | None:
    """The body's "client_id" (absent, null or "": None, a caller without one)."""
    cid = body.get("client_id")
    if cid is None or cid == "":
        return None
    if not isinstance(cid, str):
        raise BadRequest(
            400, '"client_id" must be a string (the client id that queued the prompt).'
        )
    return cid


def parse_labels(raw: Any, ids: list[str]) -> list[float]:
    """Labels as a list in candidate order, or a {candidate_id: label} map (missing ids: skip)."""
    words = ", ".join(f'"{w}"' for w in LABELS)
    if isinstance(raw, list):
        if len(raw) != len(ids):
            raise BadRequest(
                400, f"Got {len(raw)} labels for {len(ids)} candidates; give one per candidate."
            )
        pairs = list(zip(ids, raw, strict=True))
    elif isinstance(raw, dict):
        if not raw:
            raise BadRequest(400, '"labels" is empty; label at least one candidate.')
        unknown = [k for k in raw if k not in ids]
        if unknown:
            raise BadRequest(400, f"Unknown candidate id(s) {unknown[:5]}; this request has {ids}.")
        pairs = [(cid, raw.get(cid, "skip")) for cid in ids]
    else:
        raise BadRequest(400, '"labels" must be a list (candidate order) or an {id: label} object.')
    out = []
    for cid, word in pairs:
        if not isinstance(word, str) or word not in LABELS:
            raise BadRequest(400, f"Label {word!r} for candidate {cid} is not one of {words}.")
        out.append(LABELS[word])
    return out


def label_counts(labels: list[float]) -> dict[str, int]:
    return {
        "like": sum(1 for v in labels if v > 0),
        "dislike": sum(1 for v in labels if v < 0),
        "skip": sum(1 for v in labels if v == 0),
    }


def _record(req: PendingRequest, labels: list[float]) -> None:
    """The durable write (fsync'd by the profile store)."""
    if req.profile is None:
        return
    cands = req.candidates
    open_profile(req.profile, create=False).record_feedback(
        req.request_id,
        req.round if req.round is not None else 0,
        list(cands.ids),
        labels,
        cands.latents,
        cond=conditioning_to_tensors(cands.positive),
        extra={
            "prompt_id": req.payload.get("prompt_id"),
            "model_fingerprint": cands.model_fingerprint,
            "seeds": list(cands.seeds),
        },
    )


def _was_recorded(req: PendingRequest, labels: list[float]) -> bool:
    """Whether the profile holds exactly these labels for the request (a write that failed only
    after its commit point, or a retry of it). Any error reading it: not recorded."""
    if req.profile is None:
        return False
    try:
        got = open_profile(req.profile, create=False).recorded(req.request_id)
    except Exception:  # noqa: BLE001 - the caller reports the write's own error
        return False
    return got == dict(zip(req.candidates.ids, labels, strict=True))


def record_answer(registry: PickerRegistry, req: PendingRequest, labels: list[float]) -> Answer:
    """Write a claimed request's labels, then hand them to the node; runs in a worker thread.

    Whatever fails, of whatever type, the request never stays 'being answered': labels that
    reached the profile are answered, otherwise the request is released (open again: the artist
    can answer again or cancel, and the picker's timeout runs) and the error propagates. The
    state changes happen here, not in the route, so they happen even if the route is cancelled
    (the client went away) while the write runs."""
    try:
        point("feedback:claimed")
        _record(req, labels)
        point("feedback:recorded")
    except BaseException:
        if not _was_recorded(req, labels):
            registry.release(req)
            raise
    counts = dict(req.payload.get("counts") or {"like": 0, "dislike": 0})
    this = label_counts(labels)
    answer = Answer(labels, {k: counts.get(k, 0) + this[k] for k in ("like", "dislike")})
    registry.answer(req, answer)
    return answer


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


# ---- routes --------------------------------------------------------------------------------
def add_routes(routes: web.RouteTableDef, registry: PickerRegistry) -> None:
    """GET /papa/pending, POST /papa/feedback and POST /papa/cancel over `registry`."""

    @routes.get("/papa/pending")
    async def get_pending(request: web.Request) -> web.Response:
        client_id = request.query.get("client_id") or None
        return web.json_response({"pending": registry.pending(client_id)})

    @routes.post("/papa/feedback")
    async def post_feedback(request: web.Request) -> web.Response:
        try:
            body = await read_json_body(request)
            rid = body["request_id"]
            if "labels" not in body:
                raise BadRequest(400, '"labels" is missing.')
            req = registry.find_open(rid, body_client_id(body))
            labels = parse_labels(body["labels"], list(req.candidates.ids))
            registry.claim(req)
        except BadRequest as e:
            return _error(e.status, str(e))
        except NotYours as e:
            return _error(403, str(e))
        except NotOpen as e:
            return _error(409, str(e))
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                None, record_answer, registry, req, labels
            )
        except ProfileError as e:
            return _error(409, f"Profile {req.profile!r} refused the labels: {e}")
        except OSError as e:
            return _error(503, f"Could not write the labels to profile {req.profile!r}: {e}")
        except Exception as e:  # noqa: BLE001 - any bug: a clear answer, the request stays open
            logging.exception("PAPA: recording the labels of request %s failed", rid)
            return _error(
                500,
                f"Could not record the labels of request {rid} ({type(e).__name__}: {e}). "
                "Nothing was recorded and the request is still open: answer again, or cancel "
                "it; the server log has the details.",
            )
        this = label_counts(labels)
        return web.json_response(
            {"ok": True, "request_id": rid, "labels": this, "counts": answer.counts}
        )

    @routes.post("/papa/cancel")
    async def post_cancel(request: web.Request) -> web.Response:
        try:
            body = await read_json_body(request)
            registry.cancel(body["request_id"], body_client_id(body))
        except BadRequest as e:
            return _error(e.status, str(e))
        except NotYours as e:
            return _error(403, str(e))
        except NotOpen as e:
            return _error(409, str(e))
        return web.json_response({"ok": True, "request_id": body["request_id"]})


add_routes(PromptServer.instance.routes, REGISTRY)
