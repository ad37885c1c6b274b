"""The picker's open requests and their state machine, with no server and no ComfyUI import.

A request is opened by the picker node (a worker thread), which then waits on its future; an
answer (HTTP POST, main thread) claims it, writes the labels, and resolves the future:

    open --claim--> answering --answer--> (future resolved; the node finishes it) --> done
      \\               \\--release (the write failed)--> open
       \\--cancel / timeout / finish--> done

Only one answer is ever written: the first claim wins; a request being answered cannot time out
(the node waits for the answer being written). A closed request leaves its reason behind
("answered", "timeout", "cancelled", ...; the node's `finish` has the last word), the last
`finished_kept` of them, so that a late answer is told why it came too late. `feedback_server`
puts the HTTP routes over one registry.

Every request belongs to the client that queued its prompt: `payload["client_id"]`, the id of
the browser tab (ComfyUI's `clientId`) or of the script that passed one to `/prompt`, or None
for a prompt queued without one. It is listed only to that client id (`pending(client_id)`;
a request without one only to callers without one), and only that client id can answer or
cancel it (`find_open` / `cancel` raise NotYours otherwise): there is no "every client"
listing. A script that wants to answer its own requests queues its prompt with a client id of
its own (or with none) and lists and answers with the same one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

FINISHED_KEPT = 1000
POLL_S = 0.25
ANSWER_GRACE_S = 300.0


class PickerCancelled(Exception):
    """The artist cancelled the request (panel Esc / Cancel, or POST /papa/cancel)."""


class NotYours(Exception):
    """The request belongs to another client: only the client id that queued it may answer it."""

    def __init__(self, request_id: str, client_id: str | None) -> None:
        who = f"client id {client_id!r}" if client_id else "no client id"
        super().__init__(
            f"Request {request_id} was queued by another client; {who} cannot answer or cancel "
            'it. Only the browser tab (or script) that queued the prompt can: send its "client_id" '
            "with the request id. Nothing was recorded."
        )
        self.request_id = request_id
        self.client_id = client_id


class NotOpen(Exception):
    """The request cannot take an answer (unknown, being answered, or closed and why)."""

    def __init__(self, request_id: str, why: str) -> None:
        super().__init__(f"Request {request_id} is not open ({why}); nothing was recorded.")
        self.request_id = request_id
        self.why = why


@dataclass
class Answer:
    labels: list[float]
    counts: dict[str, int]


@dataclass
class PendingRequest:
    request_id: str
    candidates: Any  # feedback.Candidates
    payload: dict[str, Any]
    profile: str | None
    round: int | None
    future: Future = field(default_factory=Future)
    state: str = "open"  # open -> answering -> done (or open -> done on timeout/cancel/interrupt)
    client_id: str | None = None  # the owner: payload["client_id"] (None: queued without one)


class PickerRegistry:
    """Every open picker request, and the reasons the last closed ones closed; thread-safe."""

    def __init__(self, finished_kept: int = FINISHED_KEPT) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, PendingRequest] = {}
        self._finished: dict[str, str] = {}  # request_id -> why it closed, oldest first
        self._owners: dict[str, str | None] = {}  # request_id -> client id, open and finished
        self.finished_kept = finished_kept

    # ---- the node's side -------------------------------------------------------------------
    def open(
        self,
        request_id: str,
        candidates: Any,
        payload: dict[str, Any],
        profile: str | None,
        round_: int | None,
    ) -> PendingRequest:
        """A new open request, owned by `payload["client_id"]` (a non-empty string, else None:
        the payload is what the owner lists, so listing and ownership agree)."""
        owner = payload.get("client_id")
        owner = owner if isinstance(owner, str) and owner else None
        req = PendingRequest(request_id, candidates, payload, profile, round_, client_id=owner)
        with self._lock:
            if request_id in self._open or request_id in self._finished:
                raise ValueError(f"picker request {request_id} exists already.")
            self._open[request_id] = req
            self._owners[request_id] = owner
        return req

    def wait(
        self,
        req: PendingRequest,
        timeout_s: float,
        check_interrupt: Callable[[], None] | None = None,
        poll_s: float = POLL_S,
        answer_grace_s: float = ANSWER_GRACE_S,
    ) -> Answer | None:
        """Block until answered (Answer) or timed out (None, the request closed as "timeout");
        raises PickerCancelled when cancelled, and whatever `check_interrupt` raises (called
        every `poll_s`). timeout_s <= 0 waits forever. A request being answered at the deadline
        is waited for (its labels are already being written), but never more than
        `answer_grace_s` past it: the timeout always fires, and labels written later are
        recorded all the same (the next round trains on them)."""
        deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        while True:
            try:
                return req.future.result(timeout=poll_s)
            except FutureTimeout:
                pass
            if check_interrupt is not None:
                check_interrupt()
            if deadline is not None and time.monotonic() > deadline:
                if self.close(req, "timeout"):
                    return None
                if time.monotonic() > deadline + answer_grace_s:  # a write that never ends
                    self.finish(req, "timeout")
                    return None

    def close(self, req: PendingRequest, reason: str) -> bool:
        """Close a request unless an answer is being written (False: the caller waits on)."""
        with self._lock:
            if req.state == "answering":
                return False
            self._close(req, reason)
            return True

    def finish(self, req: PendingRequest, reason: str) -> None:
        """The node stopped waiting (answered or not): the request is done, whatever its state."""
        with self._lock:
            self._close(req, reason)

    # ---- the answering side ----------------------------------------------------------------
    def find_open(self, request_id: str, client_id: str | None) -> PendingRequest:
        """The open request `request_id` of client `client_id` (None: a caller without one);
        NotYours if another client queued it, NotOpen says why it is not open."""
        with self._lock:
            self._check_owner(request_id, client_id)
            req = self._open.get(request_id)
            if req is None or req.state != "open":
                raise self._not_open(request_id, req)
            return req

    def claim(self, req: PendingRequest) -> None:
        """open -> answering: this caller writes the answer; later ones get NotOpen."""
        with self._lock:
            if req.state != "open":
                raise self._not_open(req.request_id, req)
            req.state = "answering"

    def release(self, req: PendingRequest) -> None:
        """answering -> open: the answer could not be written; the request takes another."""
        with self._lock:
            if req.state == "answering":
                req.state = "open"

    def answer(self, req: PendingRequest, answer: Answer) -> None:
        """Hand a claimed request's written answer to the node (which may have stopped waiting:
        interrupted while the labels were written; they are recorded all the same)."""
        req.future.set_result(answer)

    def cancel(self, request_id: str, client_id: str | None) -> PendingRequest:
        """open -> done ("cancelled"); the waiting node gets PickerCancelled. Only the client
        that queued it (NotYours otherwise)."""
        with self._lock:
            self._check_owner(request_id, client_id)
            req = self._open.get(request_id)
            if req is None or req.state != "open":
                raise self._not_open(request_id, req)
            self._close(req, "cancelled")
        req.future.set_exception(
            PickerCancelled(f"Request {request_id} was cancelled by the artist.")
        )
        return req

    # ---- reading -----------------------------------------------------------------------------
    def pending(self, client_id: str | None) -> list[dict[str, Any]]:
        """The payloads of client `client_id`'s requests open for an answer; None lists the
        requests queued without a client id (never every client's); "" is None."""
        client_id = client_id or None
        with self._lock:
            return [
                r.payload
                for r in self._open.values()
                if r.state == "open" and r.client_id == client_id
            ]

    def closed_reason(self, request_id: str) -> str | None:
        with self._lock:
            return self._finished.get(request_id)

    def __len__(self) -> int:
        """Requests not yet done (open or being answered)."""
        with self._lock:
            return len(self._open)

    # ---- under the lock ----------------------------------------------------------------------
    def _close(self, req: PendingRequest, reason: str) -> None:
        req.state = "done"
        if self._open.get(req.request_id) is req:
            del self._open[req.request_id]
        self._finished[req.request_id] = reason  # the node's finish has the last word
        while len(self._finished) > self.finished_kept:
            oldest = next(iter(self._finished))
            del self._finished[oldest]
            self._owners.pop(oldest, None)

    def _check_owner(self, request_id: str, client_id: str | None) -> None:
        """NotYours if `request_id` (open, or closed and remembered) is another client's."""
        if request_id in self._owners and self._owners[request_id] != (client_id or None):
            raise NotYours(request_id, client_id or None)

    def _not_open(self, request_id: str, req: PendingRequest | None) -> NotOpen:
        why = self._finished.get(request_id) or ("being answered" if req else "unknown request id")
        return NotOpen(request_id, why)
