"""The picker's timeout always fires: an answer whose write never ends holds the node at most
`answer_grace_s` past the deadline (no server: the registry alone)."""

from __future__ import annotations

import threading
import time

from comfy_papa.host.picker_registry import Answer, NotOpen, PickerRegistry


class Cands:
    ids = ["a", "b"]


def test_a_write_that_never_ends_does_not_hold_the_picker_past_the_grace():
    reg = PickerRegistry()
    req = reg.open("r1", Cands(), {"request_id": "r1"}, "prof", 1)
    reg.claim(req)  # 'being answered', and the write never finishes
    t0 = time.monotonic()
    assert reg.wait(req, 0.2, poll_s=0.02, answer_grace_s=0.3) is None
    assert 0.5 <= time.monotonic() - t0 < 5
    assert reg.closed_reason("r1") == "timeout" and len(reg) == 0
    reg.release(req)  # the write fails late: nothing reopens a finished request
    reg.answer(req, Answer([1.0, -1.0], {}))  # or it succeeds late: recorded, nobody waits
    try:
        reg.find_open("r1", None)
    except NotOpen as e:
        assert "timeout" in str(e)
    else:
        raise AssertionError("a timed-out request must not take answers")


def test_an_answer_being_written_at_the_deadline_is_still_waited_for_within_the_grace():
    reg = PickerRegistry()
    req = reg.open("r2", Cands(), {"request_id": "r2"}, "prof", 1)
    reg.claim(req)
    ans = Answer([1.0, -1.0], {"like": 1, "dislike": 1})
    threading.Timer(0.4, reg.answer, (req, ans)).start()  # lands after the 0.1 s deadline
    assert reg.wait(req, 0.1, poll_s=0.02, answer_grace_s=5) is ans
