"""Drive the preference picker over HTTP: build its graph, find its request, answer it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import requests

from .graph import Graph


def picker_graph(
    checkpoint: str,
    count: int = 3,
    seed: int = 11,
    profile: str | None = None,
    timeout: int = 1800,
    on_timeout: str = "fail",
) -> Graph:
    """checkpoint -> candidate sampler -> VAE decode -> picker (an output node) [-> profile]."""
    g = Graph()
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=checkpoint)
    pos = g.node("CLIPTextEncode", clip=ckpt[1], text="a lighthouse at dusk")
    neg = g.node("CLIPTextEncode", clip=ckpt[1], text="")
    empty = g.node("EmptyLatentImage", width=64, height=64, batch_size=1)
    cand = g.node(
        "PAPACandidateSampler",
        model=ckpt[0],
        positive=pos[0],
        negative=neg[0],
        latent=empty[0],
        count=count,
        seed=seed,
        steps=2,
        cfg=2.0,
        sampler_name="euler",
        scheduler="normal",
    )
    dec = g.node("VAEDecode", samples=cand[0], vae=ckpt[2])
    inputs = {"images": dec[0], "candidates": cand[1], "timeout": timeout}
    inputs["on_timeout"] = on_timeout
    if profile is not None:
        prof = g.node("PAPAProfile", name=profile, rollback_to_round=-1, reset=False)
        inputs["profile"] = prof[0]
    g.node("PAPAPreferencePicker", node_id="picker", **inputs)
    return g


def new_client_id() -> str:
    return uuid.uuid4().hex


# A request belongs to the client id its prompt was queued with: only that id lists, answers
# and cancels it (403 otherwise). The harness plays that client: `pending` remembers the owner
# of every request it lists, and `answer` / `cancel` send it unless told another one.
_OWNERS: dict[str, str | None] = {}
OWNER = object()  # `client_id` default: the owner `pending` saw (none if it never listed it)


def pending(url: str, client_id: str | None = None) -> list[dict]:
    """The open requests of `client_id` (None: of the prompts queued without a client id)."""
    params = {"client_id": client_id} if client_id else None
    r = requests.get(url + "/papa/pending", params=params, timeout=10)
    r.raise_for_status()
    found = r.json()["pending"]
    for req in found:
        _OWNERS[req["request_id"]] = req.get("client_id")
    return found


def wait_pending(url: str, client_id: str, timeout: float = 120.0) -> dict:
    """The first open request queued by `client_id`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pending(url, client_id)
        if found:
            return found[0]
        time.sleep(0.2)
    raise TimeoutError(f"no picker request for client {client_id} within {timeout}s")


def _body(request_id: str, client_id) -> dict:
    if client_id is OWNER:
        client_id = _OWNERS.get(request_id) if isinstance(request_id, str) else None
    body = {"request_id": request_id}
    if client_id is not None:
        body["client_id"] = client_id
    return body


def answer(
    url: str, request_id: str, labels, path: str = "/papa/feedback", client_id=OWNER
) -> requests.Response:
    body = dict(_body(request_id, client_id), labels=labels)
    return requests.post(url + path, json=body, timeout=30)


def cancel(url: str, request_id: str, client_id=OWNER) -> requests.Response:
    return requests.post(url + "/papa/cancel", json=_body(request_id, client_id), timeout=30)


def history(base: Path, profile: str) -> list[dict]:
    path = base / "models" / "papa_profiles" / profile / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
