"""Every failure while an answer is saved, of any exception type, leaves the request answerable
again (or answered, once the labels are on disk), never stuck 'being answered'; retry, cancel and
the picker's timeout keep working, and the queue goes on.

Faults are injected into a real server through the store's hook (comfy_papa/profile/faults.py),
read from a file the test rewrites between answers (`COMFY_PAPA_FAULT_FILE`), at each step of
an answer: the route's claim, each step of the pending file's atomic write, the history append,
and after the labels are recorded.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from harness.graph import queue, wait
from harness.picker import answer, cancel, history, new_client_id, pending, picker_graph
from harness.picker import wait_pending as _wait_pending

pytestmark = pytest.mark.slow

# Steps before the labels' commit point (the history append): a failure records nothing.
BEFORE = [
    "feedback:claimed",
    "write:*.safetensors:begin",
    "write:*.safetensors:written",
    "write:*.safetensors:synced",
    "write:*.safetensors:renamed",
    "feedback:pending-saved",
    "append:history.jsonl:begin",
    "append:history.jsonl:written",
]
# Steps after it: the labels are on disk, so the answer stands.
AFTER = ["feedback:history-appended", "feedback:recorded"]
# Any exception type: bugs (raise:<builtin>), and the OS errors a disk gives.
ACTIONS = [
    "raise:ValueError",
    "raise:TypeError",
    "raise:KeyError",
    "raise:RuntimeError",
    "raise:AttributeError",
    "raise:AssertionError",
    "raise:ZeroDivisionError",
    "raise:IndexError",
    "raise:MemoryError",
    "raise:RecursionError",
    "raise:NotImplementedError",
    "raise:UnicodeError",
    "raise:PermissionError",
    "eio",
    "enospc",
]


@pytest.fixture
def server(own_comfy, tmp_path):
    fault = tmp_path / "fault.json"
    s = own_comfy(env={"COMFY_PAPA_FAULT_FILE": str(fault)})
    s.fault = fault
    return s


def _fault(server, pattern: str | None, action: str = "raise:ValueError", times=None) -> None:
    """Set the running server's fault (None: no fault)."""
    cfg = {"id": uuid.uuid4().hex, "pattern": pattern or "", "action": action, "times": times}
    server.fault.write_text(json.dumps(cfg))


def _profile_dir(server, name):
    return server.base / "models" / "papa_profiles" / name


def _nothing_recorded(server, name) -> None:
    d = _profile_dir(server, name)
    assert history(server.base, name) == []
    assert not (d / "pending").exists() or not list((d / "pending").iterdir())
    assert not list(d.rglob(".tmp-*"))


def _queue(server, checkpoint, **kwargs):
    cid = new_client_id()
    prompt_id = queue(server.url, picker_graph(checkpoint, **kwargs).prompt(), cid)
    return cid, prompt_id, _wait_pending(server.url, cid)


def test_any_exception_at_any_step_leaves_the_request_answerable(server, checkpoint_name):
    name = "faulty"
    cid, prompt_id, req = _queue(server, checkpoint_name, count=2, profile=name, timeout=900)
    rid = req["request_id"]
    statuses = {}
    for pattern in BEFORE:
        for action in ACTIONS:
            _fault(server, pattern, action, times=1)
            r = answer(server.url, rid, ["like", "dislike"])
            assert r.status_code in (409, 500, 503), (pattern, action, r.status_code, r.text)
            body = r.json()
            assert body["ok"] is False and body["error"], (pattern, action, r.text)
            if action.startswith("raise:") and action != "raise:PermissionError":
                assert action[6:] in body["error"] and "still open" in body["error"], body
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert [p["request_id"] for p in pending(server.url, cid)] == [rid], (
                f"not answerable again after {action} at {pattern}"
            )
            _nothing_recorded(server, name)
    assert len(BEFORE) * len(ACTIONS) == sum(statuses.values())
    # After the commit point the labels are on disk: the answer stands (exactly once).
    _fault(server, AFTER[0], "raise:TypeError", times=1)
    r = answer(server.url, rid, ["like", "dislike"])
    assert r.status_code == 200, r.text
    result = wait(server.url, prompt_id, 120)
    assert result.ok, result.error()
    assert [row["label"] for row in history(server.base, name)] == [1.0, -1.0]

    _, prompt_id, req = _queue(server, checkpoint_name, count=2, seed=5, profile=name)
    _fault(server, AFTER[1], "raise:KeyError", times=1)
    r = answer(server.url, req["request_id"], ["skip", "like"])
    assert r.status_code == 200, r.text
    assert wait(server.url, prompt_id, 120).ok
    rows = history(server.base, name)
    assert [(row["request_id"], row["label"]) for row in rows] == [
        (rid, 1.0),
        (rid, -1.0),
        (req["request_id"], 0.0),
        (req["request_id"], 1.0),
    ]


def test_a_failing_answer_never_wedges_retry_cancel_timeout_or_the_queue(server, checkpoint_name):
    """The fault fires at every answer: the picker still times out, cancel still works, the
    next queued prompt runs, and once the cause is gone the same request takes its answer."""
    _fault(server, "feedback:claimed", "raise:TypeError")
    g = picker_graph(checkpoint_name, count=2, seed=1, profile="wedge", timeout=6).prompt()
    cid_a = new_client_id()
    a = queue(server.url, g, cid_a)
    g = picker_graph(checkpoint_name, count=2, seed=2, profile="wedge", timeout=900).prompt()
    cid_b = new_client_id()
    b = queue(server.url, g, cid_b)
    g = picker_graph(checkpoint_name, count=2, seed=3, profile="wedge", timeout=900).prompt()
    cid_c = new_client_id()
    c = queue(server.url, g, cid_c)

    req_a = _wait_pending(server.url, cid_a)
    for _ in range(3):
        r = answer(server.url, req_a["request_id"], ["like", "like"])
        assert r.status_code == 500 and "TypeError" in r.json()["error"], r.text
    result = wait(server.url, a, 60)  # the timeout fires
    assert result.status == "error"
    assert "nobody answered within 6 s" in result.error()["exception_message"]

    req_b = _wait_pending(server.url, cid_b)  # the queue went on
    assert answer(server.url, req_b["request_id"], ["like", "like"]).status_code == 500
    r = cancel(server.url, req_b["request_id"])
    assert r.status_code == 200, r.text
    assert "cancelled by the artist" in wait(server.url, b, 60).error()["exception_message"]

    req_c = _wait_pending(server.url, cid_c)
    assert answer(server.url, req_c["request_id"], ["like", "skip"]).status_code == 500
    _fault(server, None)  # the cause is gone
    r = answer(server.url, req_c["request_id"], ["like", "skip"])
    assert r.status_code == 200, r.text
    assert wait(server.url, c, 60).ok
    assert [row["request_id"] for row in history(server.base, "wedge")] == [req_c["request_id"]] * 2


def test_a_damaged_profile_while_the_picker_waits_is_reported_and_the_request_stays_open(
    server, checkpoint_name
):
    """The issue's cases: a copy rounds/r0001.bak, then a manifest with round null / "x" /
    consumed_requests 5, each made while the picker waits."""
    name = "damaged"
    cid, prompt_id, req = _queue(server, checkpoint_name, count=2, seed=7, profile=name)
    rid, d = req["request_id"], _profile_dir(server, name)
    (d / "rounds" / "r0001.bak").mkdir(parents=True)
    (d / "rounds" / "r0001.bak" / "note.txt").write_text("a user's copy")
    good = (d / "manifest.json").read_text()
    for field, value in [("round", None), ("round", "x"), ("consumed_requests", 5)]:
        (d / "manifest.json").write_text(json.dumps({**json.loads(good), field: value}))
        r = answer(server.url, rid, ["like", "dislike"])
        assert r.status_code == 409, r.text
        msg = r.json()["error"]
        assert "manifest.json" in msg and f'"{field}"' in msg, msg
        assert [p["request_id"] for p in pending(server.url, cid)] == [rid]
        _nothing_recorded(server, name)
    (d / "manifest.json").write_text(good)
    r = answer(server.url, rid, ["like", "dislike"])
    assert r.status_code == 200, r.text
    assert wait(server.url, prompt_id, 60).ok
    assert (d / "rounds" / "r0001.bak" / "note.txt").read_text() == "a user's copy"
    assert [row["label"] for row in history(server.base, name)] == [1.0, -1.0]
    shutil.rmtree(d / "rounds" / "r0001.bak")
