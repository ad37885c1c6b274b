"""The picker request state machine (comfy_papa.host.picker_registry), with no server: open ->
answering -> done, timeouts, cancelling, one answer only, and the reasons a late answer is told."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from comfy_papa.host.picker_registry import (
    Answer,
    NotOpen,
    NotYours,
    PickerCancelled,
    PickerRegistry,
)


class Cands:
    ids = ["a", "b"]


def opened(reg: PickerRegistry, rid: str = "r1", client: str | None = "tab1"):
    return reg.open(rid, Cands(), {"request_id": rid, "client_id": client}, "prof", 1)


def answer(reg: PickerRegistry, req, labels=(1.0, -1.0)) -> Answer:
    ans = Answer(list(labels), {"like": 1, "dislike": 1})
    reg.claim(req)
    reg.answer(req, ans)
    return ans


def test_open_requests_are_pending_per_client():
    reg = PickerRegistry()
    opened(reg, "r1", "tab1")
    opened(reg, "r2", "tab2")
    assert [p["request_id"] for p in reg.pending("tab1")] == ["r1"]
    assert [p["request_id"] for p in reg.pending("tab2")] == ["r2"]
    assert reg.find_open("r1", "tab1").request_id == "r1"
    assert len(reg) == 2
    with pytest.raises(ValueError, match="exists already"):
        opened(reg, "r1")


def test_an_answer_reaches_the_waiting_node_and_closes_the_request():
    reg = PickerRegistry()
    req = opened(reg)
    ans = answer(reg, req)
    assert req.state == "answering" and reg.pending("tab1") == []
    assert reg.wait(req, timeout_s=5, poll_s=0.01) is ans
    reg.finish(req, "answered")
    assert req.state == "done" and len(reg) == 0
    assert reg.closed_reason("r1") == "answered"
    with pytest.raises(NotOpen, match=r"not open \(answered\)"):
        reg.find_open("r1", "tab1")


def test_only_the_first_of_concurrent_answers_is_taken():
    reg = PickerRegistry()
    req = opened(reg)
    barrier = threading.Barrier(8)

    def try_claim(_):
        barrier.wait()
        try:
            reg.claim(req)
            return True
        except NotOpen as e:
            assert e.why == "being answered"
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(try_claim, range(8))) == [False] * 7 + [True]
    with pytest.raises(NotOpen, match="being answered"):
        reg.find_open("r1", "tab1")


def test_a_failed_write_releases_the_request_for_another_answer():
    reg = PickerRegistry()
    req = opened(reg)
    reg.claim(req)
    assert reg.pending("tab1") == []
    reg.release(req)
    assert req.state == "open" and [p["request_id"] for p in reg.pending("tab1")] == ["r1"]
    ans = answer(reg, req)
    assert reg.wait(req, timeout_s=1, poll_s=0.01) is ans


def test_timeout_closes_an_open_request_and_refuses_a_late_answer():
    reg = PickerRegistry()
    req = opened(reg)
    assert reg.wait(req, timeout_s=0.05, poll_s=0.01) is None
    assert (
        req.state == "done" and reg.pending("tab1") == [] and reg.closed_reason("r1") == "timeout"
    )
    with pytest.raises(NotOpen, match=r"not open \(timeout\)"):
        reg.claim(req)


def test_a_request_being_answered_at_the_deadline_is_waited_for():
    reg = PickerRegistry()
    req = opened(reg)
    reg.claim(req)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(a=reg.wait(req, 0.02, poll_s=0.01)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # past the deadline, still waiting: the labels are being written
    assert reg.close(req, "timeout") is False
    ans = Answer([1.0, 0.0], {"like": 1, "dislike": 0})
    reg.answer(req, ans)
    waiter.join(5)
    assert result["a"] is ans


def test_waiting_forever_and_interrupting():
    reg = PickerRegistry()
    req = opened(reg)
    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("interrupted")

    with pytest.raises(KeyboardInterrupt):
        reg.wait(req, timeout_s=0, check_interrupt=interrupt, poll_s=0.01)
    assert req.state == "open"  # the node decides: it finishes the request
    reg.finish(req, "interrupted")
    assert reg.closed_reason("r1") == "interrupted"


def test_cancel_wakes_the_node_and_only_an_open_request_can_be_cancelled():
    reg = PickerRegistry()
    req = opened(reg)
    reg.cancel("r1", "tab1")
    with pytest.raises(PickerCancelled, match="cancelled by the artist"):
        reg.wait(req, timeout_s=5, poll_s=0.01)
    with pytest.raises(NotOpen, match=r"cancelled"):
        reg.cancel("r1", "tab1")
    with pytest.raises(NotOpen, match="unknown request id"):
        reg.cancel("nope", "tab1")
    other = opened(reg, "r2")
    reg.claim(other)
    with pytest.raises(NotOpen, match="being answered"):
        reg.cancel("r2", "tab1")


def test_the_node_finish_has_the_last_word_on_the_reason():
    reg = PickerRegistry()
    req = opened(reg)
    assert reg.close(req, "timeout") is True
    reg.finish(req, "error")
    assert reg.closed_reason("r1") == "error"


@pytest.mark.parametrize("how", ["finish", "close", "cancel", "timeout"])
def test_every_way_of_closing_keeps_only_the_last_reasons(how):
    reg = PickerRegistry(finished_kept=3)
    for i in range(5):
        req = opened(reg, f"r{i}")
        if how == "finish":
            reg.finish(req, "answered")
        elif how == "close":
            reg.close(req, "timeout")
        elif how == "cancel":
            reg.cancel(f"r{i}", "tab1")
        else:
            reg.wait(req, timeout_s=0.001, poll_s=0.001)
    assert len(reg) == 0
    assert [reg.closed_reason(f"r{i}") is None for i in range(5)] == [True, True] + [False] * 3
    with pytest.raises(NotOpen, match="unknown request id"):
        reg.find_open("r0", "tab1")


def test_a_request_is_listed_only_to_the_client_that_queued_it():
    reg = PickerRegistry()
    opened(reg, "r1", "tab1")
    opened(reg, "r2", "tab2")
    opened(reg, "r3", None)  # a script's prompt queued without a client id
    opened(reg, "r4", "")  # an empty client id is no client id
    assert [p["request_id"] for p in reg.pending("tab1")] == ["r1"]
    assert [p["request_id"] for p in reg.pending("tab2")] == ["r2"]
    assert [p["request_id"] for p in reg.pending(None)] == ["r3", "r4"]  # never every client's
    assert [p["request_id"] for p in reg.pending("")] == ["r3", "r4"]
    assert reg.pending("tab3") == []


@pytest.mark.parametrize("caller", ["tab2", None, "", "TAB1"])
def test_another_client_can_neither_answer_nor_cancel_and_nothing_changes(caller):
    reg = PickerRegistry()
    req = opened(reg, "r1", "tab1")
    with pytest.raises(NotYours, match="queued by another client.*Nothing was recorded"):
        reg.find_open("r1", caller)
    with pytest.raises(NotYours, match="queued by another client"):
        reg.cancel("r1", caller)
    assert req.state == "open" and not req.future.done()
    assert [p["request_id"] for p in reg.pending("tab1")] == ["r1"]
    assert reg.find_open("r1", "tab1") is req  # the owner still can
    reg.cancel("r1", "tab1")
    with pytest.raises(PickerCancelled):
        reg.wait(req, timeout_s=1, poll_s=0.01)
    # Closed, the request stays its owner's: another client learns nothing of why it closed.
    with pytest.raises(NotYours):
        reg.find_open("r1", caller)
    with pytest.raises(NotOpen, match="cancelled"):
        reg.find_open("r1", "tab1")


def test_a_request_queued_without_a_client_id_is_answered_by_callers_without_one():
    reg = PickerRegistry()
    req = reg.open("r1", Cands(), {"request_id": "r1"}, "prof", 1)  # no client_id at all
    assert req.client_id is None
    with pytest.raises(NotYours):
        reg.find_open("r1", "tab1")
    assert reg.find_open("r1", None) is req
    assert reg.find_open("r1", "") is req  # "" is no client id
    reg.cancel("r1", None)
    assert reg.closed_reason("r1") == "cancelled"


def test_owners_are_forgotten_with_the_reasons():
    reg = PickerRegistry(finished_kept=2)
    for i in range(4):
        reg.finish(opened(reg, f"r{i}", f"tab{i}"), "answered")
    with pytest.raises(NotOpen, match="unknown request id"):
        reg.find_open("r0", "tab3")  # forgotten: unknown to everyone
    with pytest.raises(NotYours):
        reg.find_open("r3", "tab0")
    assert len(reg._owners) == 2
