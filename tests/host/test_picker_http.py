"""The picker answered over HTTP on a real server: records, refusals, interrupt, timeout."""

import time

import requests

from harness.graph import interrupt, queue, wait
from harness.picker import (
    answer,
    cancel,
    history,
    new_client_id,
    pending,
    picker_graph,
    wait_pending,
)
from harness.ws import WsClient


def _queue_picker(comfy, checkpoint, **kwargs):
    cid = new_client_id()
    prompt_id = queue(comfy.url, picker_graph(checkpoint, **kwargs).prompt(), cid)
    return cid, prompt_id, wait_pending(comfy.url, cid)


def test_answer_is_written_to_profile_history_and_a_second_answer_is_refused(
    comfy, checkpoint_name
):
    name = "http-answer"
    cid, prompt_id, req = _queue_picker(comfy, checkpoint_name, count=3, profile=name)
    assert req["profile"] == name and req["round"] == 1
    assert req["counts"] == {"like": 0, "dislike": 0}
    assert [c["index"] for c in req["candidates"]] == [0, 1, 2]
    img = requests.get(comfy.url + "/view", params=req["candidates"][0]["image"], timeout=10)
    assert img.ok and img.content[:4] == b"\x89PNG"
    assert req["client_id"] == cid
    assert req not in pending(comfy.url)  # no client id: only prompts queued without one
    assert pending(comfy.url, new_client_id()) == []  # nor another client's

    r = answer(comfy.url, req["request_id"], ["like", "dislike", "skip"])
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"like": 1, "dislike": 1}
    # The 200 is the receipt: the history holds the labels before the run finishes.
    rows = history(comfy.base, name)
    ids = [c["id"] for c in req["candidates"]]
    assert [(row["candidate"], row["label"]) for row in rows] == list(
        zip(ids, [1.0, -1.0, 0.0], strict=True)
    )
    assert {row["request_id"] for row in rows} == {req["request_id"]}

    again = answer(comfy.url, req["request_id"], ["like", "like", "like"])
    assert again.status_code == 409, again.text
    result = wait(comfy.url, prompt_id, 120)
    assert result.ok, result.error()
    ui = result.outputs["picker"]["papa_feedback"][0]
    assert ui["labels"] == dict(zip(ids, ["like", "dislike", "skip"], strict=True))
    late = answer(comfy.url, req["request_id"], ["like", "like", "like"])
    assert late.status_code == 409 and "answered" in late.json()["error"]
    assert len(history(comfy.base, name)) == 3
    assert pending(comfy.url, cid) == []


def test_bad_answers_are_refused_with_a_message_and_the_request_stays_open(comfy, checkpoint_name):
    cid, prompt_id, req = _queue_picker(comfy, checkpoint_name, count=2, seed=21)
    rid, ids = req["request_id"], [c["id"] for c in req["candidates"]]
    url = comfy.url + "/papa/feedback"
    try:
        unknown = answer(comfy.url, "0" * 32, ["like", "like"])
        assert unknown.status_code == 409 and "unknown" in unknown.json()["error"]
        bad = [
            (requests.post(url, data=b"{not json", timeout=10), "JSON"),
            (requests.post(url, json=["a"], timeout=10), "object"),
            (requests.post(url, json={"labels": ["like", "like"]}, timeout=10), "request_id"),
            (requests.post(url, json={"request_id": rid}, timeout=10), "labels"),
            (answer(comfy.url, rid, "like like"), "labels"),
            (answer(comfy.url, rid, ["like"]), "1 labels for 2"),
            (answer(comfy.url, rid, ["like", "meh"]), "meh"),
            (answer(comfy.url, rid, {"nope": "like"}), "nope"),
            (answer(comfy.url, rid, {}), "empty"),
            (answer(comfy.url, rid, [1, 0]), "not one of"),
        ]
        for r, needle in bad:
            assert r.status_code == 400, (needle, r.status_code, r.text)
            assert needle in r.json()["error"], (needle, r.text)
        huge = requests.post(url, data=b'{"x": "' + b"a" * 70_000 + b'"}', timeout=10)
        assert huge.status_code == 413, huge.text
        # Also under /api (the frontend's path), and the request is still open after all that.
        assert pending(comfy.url, cid)[0]["request_id"] == rid
        ok = answer(comfy.url, rid, {ids[1]: "dislike"}, path="/api/papa/feedback")
        assert ok.status_code == 200, ok.text
    finally:
        cancel(comfy.url, rid)
    result = wait(comfy.url, prompt_id, 120)
    assert result.ok, result.error()
    labels = result.outputs["picker"]["papa_feedback"][0]["labels"]
    assert labels == {ids[0]: "skip", ids[1]: "dislike"}


def test_interrupt_while_waiting_ends_the_run_interrupted_and_records_nothing(
    comfy, checkpoint_name
):
    name = "http-interrupt"
    _, prompt_id, req = _queue_picker(comfy, checkpoint_name, count=2, seed=31, profile=name)
    interrupt(comfy.url)
    result = wait(comfy.url, prompt_id, 60)
    assert result.interrupted() and not result.ok
    assert answer(comfy.url, req["request_id"], ["like", "like"]).status_code == 409
    assert history(comfy.base, name) == []
    pending_dir = comfy.base / "models" / "papa_profiles" / name / "pending"
    assert not pending_dir.exists() or not any(pending_dir.iterdir())


def test_timeout_policies_skip_the_round_or_fail_clearly(comfy, checkpoint_name):
    g = picker_graph(checkpoint_name, count=2, seed=41, timeout=1, on_timeout="skip round")
    skipped = wait(comfy.url, queue(comfy.url, g.prompt(), new_client_id()), 60)
    assert skipped.ok, skipped.error()
    fb = skipped.outputs["picker"]["papa_feedback"][0]
    assert fb["reason"] == "timeout" and set(fb["labels"].values()) == {"skip"}

    g = picker_graph(checkpoint_name, count=2, seed=41, timeout=1, on_timeout="fail")
    failed = wait(comfy.url, queue(comfy.url, g.prompt(), new_client_id()), 60)
    assert failed.status == "error"
    assert "nobody answered within 1 s" in failed.error()["exception_message"]


def test_cancel_stops_the_run_with_a_clear_error(comfy, checkpoint_name):
    _, prompt_id, req = _queue_picker(comfy, checkpoint_name, count=2, seed=51)
    r = cancel(comfy.url, req["request_id"])
    assert r.status_code == 200, r.text
    result = wait(comfy.url, prompt_id, 60)
    assert result.status == "error"
    assert "cancelled by the artist" in result.error()["exception_message"]
    assert cancel(comfy.url, req["request_id"]).status_code == 409


def test_request_event_goes_only_to_the_queuing_client(comfy, checkpoint_name):
    queuing, other = WsClient(comfy.url, new_client_id()), WsClient(comfy.url, new_client_id())
    try:
        g = picker_graph(checkpoint_name, count=2, seed=61)
        prompt_id = queue(comfy.url, g.prompt(), queuing.client_id)
        event = queuing.wait_for("papa.request")
        assert event["client_id"] == queuing.client_id
        ok = answer(comfy.url, event["request_id"], ["like", "skip"], client_id=queuing.client_id)
        assert ok.status_code == 200, ok.text
        done = queuing.wait_for("papa.request_done")
        assert done == {"request_id": event["request_id"], "reason": "answered"}
        assert wait(comfy.url, prompt_id, 60).ok
        assert other.of_type("papa.request") == [] and other.of_type("papa.request_done") == []
    finally:
        queuing.close()
        other.close()


def test_a_request_is_listed_answered_and_cancelled_only_by_the_client_that_queued_it(
    comfy, checkpoint_name
):
    """Scoping: another client id, or none, neither sees nor answers nor cancels the request
    (403, nothing recorded, the request stays open); its own client id does. A prompt queued
    without a client id is listed to and answered by callers without one."""
    name = "http-scoped"
    cid, prompt_id, req = _queue_picker(comfy, checkpoint_name, count=2, seed=71, profile=name)
    rid = req["request_id"]
    other = new_client_id()
    try:
        assert pending(comfy.url) == [] and pending(comfy.url, other) == []
        for who in (other, None):
            for r in (
                answer(comfy.url, rid, ["like", "dislike"], client_id=who),
                answer(comfy.url, rid, ["like", "dislike"], "/api/papa/feedback", client_id=who),
                cancel(comfy.url, rid, client_id=who),
            ):
                assert r.status_code == 403, (who, r.text)
                assert "queued by another client" in r.json()["error"], r.text
                assert "Nothing was recorded" in r.json()["error"], r.text
        bad = requests.post(
            comfy.url + "/papa/feedback",
            json={"request_id": rid, "client_id": 5, "labels": ["like", "like"]},
            timeout=10,
        )
        assert bad.status_code == 400 and "client_id" in bad.json()["error"], bad.text
        assert history(comfy.base, name) == []
        assert [p["request_id"] for p in pending(comfy.url, cid)] == [rid]  # still open
        ok = answer(comfy.url, rid, ["like", "dislike"], client_id=cid)
        assert ok.status_code == 200, ok.text
        late = answer(comfy.url, rid, ["like", "like"], client_id=other)
        assert late.status_code == 403, late.text  # a closed request stays its owner's
    finally:
        cancel(comfy.url, rid, client_id=cid)
    assert wait(comfy.url, prompt_id, 120).ok
    assert [row["label"] for row in history(comfy.base, name)] == [1.0, -1.0]

    # Queued without a client id (a script through the API): listed to callers without one.
    g = picker_graph(checkpoint_name, count=2, seed=72)
    r = requests.post(comfy.url + "/prompt", json={"prompt": g.prompt()}, timeout=30)
    assert r.ok, r.text
    anon_prompt = r.json()["prompt_id"]
    deadline = time.monotonic() + 120
    while not (anon := pending(comfy.url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(anon) == 1 and anon[0]["client_id"] is None, anon
    anon_rid = anon[0]["request_id"]
    assert pending(comfy.url, other) == []
    assert answer(comfy.url, anon_rid, ["skip", "like"], client_id=other).status_code == 403
    assert cancel(comfy.url, anon_rid, client_id=other).status_code == 403
    done = answer(comfy.url, anon_rid, ["skip", "like"], client_id=None)
    assert done.status_code == 200, done.text
    assert wait(comfy.url, anon_prompt, 120).ok


def test_candidates_over_the_latent_cap_are_refused_before_the_request_opens(
    own_comfy, checkpoint_name
):
    """A server whose cap is lowered to 2 KiB (COMFY_PAPA_MAX_REQUEST_LATENT_BYTES): 3 candidates
    of 64x64 (3 x 1 KiB of latents) stop the run with the picker's message; no request opened,
    no preview written, nothing in the profile."""
    server = own_comfy(env={"COMFY_PAPA_MAX_REQUEST_LATENT_BYTES": "2048"})
    cid, name = new_client_id(), "http-capped"
    g = picker_graph(checkpoint_name, count=3, seed=81, profile=name, timeout=30)
    result = wait(server.url, queue(server.url, g.prompt(), cid), 180)
    assert result.status == "error"
    msg = result.error()["exception_message"]
    for needle in (
        "PAPA Preference Picker: the 3 candidates' latents take 3.0 KiB",
        "at most 2.0 KiB",
        "Nothing was recorded",
        "at most 2 at this size",
    ):
        assert needle in msg, msg
    assert pending(server.url, cid) == []
    previews = server.base / "temp" / "papa_picker"
    assert not previews.exists() or not any(previews.iterdir())
    assert history(server.base, name) == []
    pending_dir = server.base / "models" / "papa_profiles" / name / "pending"
    assert not pending_dir.exists() or not any(pending_dir.iterdir())
