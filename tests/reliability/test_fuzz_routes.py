"""Every HTTP route of the pack fuzzed with generated bodies and query strings (hypothesis).

Fixed number of cases per route (CASES), derandomized: the same cases on every run. Against the
real shared server, with a real open picker request that some cases answer or cancel. Nothing may
answer 500, crash the server, or write outside the profile folder. Bodies with the live request id
carry its owner's client id in most cases (a request is answered only by the client id that
queued it), else another client's, none, or a generated value (403 or 400).
"""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.graph import queue, wait
from harness.picker import new_client_id, picker_graph, wait_pending
from tests.reliability.rel_common import changed_outside, snapshot

CASES = 300
PROFILE = "fuzz-prof"
FUZZ = settings(
    max_examples=CASES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
ALLOWED = (f"models/papa_profiles/{PROFILE}",)
OK_STATUS = {200, 400, 403, 404, 405, 409, 413, 503}


class OpenRequest:
    """A picker request kept open on the server; re-queued when a case answered or cancelled it."""

    def __init__(self, server, checkpoint) -> None:
        self.server, self.checkpoint = server, checkpoint
        self.rid, self.ids, self.reopened, self.cid = "", [], 0, ""
        self.prompts: list[str] = []
        self.open()

    def open(self) -> None:
        cid = new_client_id()
        g = picker_graph(self.checkpoint, count=2, seed=900 + self.reopened, profile=PROFILE)
        self.prompts.append(queue(self.server.url, g.prompt(), cid))
        req = wait_pending(self.server.url, cid)
        self.rid, self.ids = req["request_id"], [c["id"] for c in req["candidates"]]
        self.cid = cid

    def ensure_open(self) -> None:
        params = {"client_id": self.cid}
        r = requests.get(self.server.url + "/papa/pending", params=params, timeout=10).json()
        r = r["pending"]
        if not any(p["request_id"] == self.rid for p in r):
            self.reopened += 1
            self.open()


@pytest.fixture(scope="module")
def target(comfy, checkpoint_name):
    before = snapshot(comfy.base)
    t = OpenRequest(comfy, checkpoint_name)
    t.before = before
    yield t
    body = {"request_id": t.rid, "client_id": t.cid}
    requests.post(comfy.url + "/papa/cancel", json=body, timeout=10)


WORDS = st.sampled_from(["like", "dislike", "skip", "LIKE", "", "+", "meh", "like\x00"])
JSONV = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
TRICKY_IDS = st.sampled_from(
    ["../../etc/passwd", "/etc/passwd", "a\x00b", "x" * 5000, "ｒｅｑ", "CON", "", " ", "%2e%2e"]
)


@st.composite
def rid_strategy(draw, open_share: float):
    """The live request id in about `open_share` of the cases, else anything."""
    if draw(st.integers(0, 99)) < open_share * 100:
        return "OPEN"
    return draw(TRICKY_IDS | st.text(max_size=70) | JSONV | st.just(None))


@st.composite
def labels_strategy(draw):
    ids = st.sampled_from(["ID0", "ID1"]) | st.text(max_size=10)
    return draw(
        st.lists(WORDS | JSONV, max_size=4)
        | st.dictionaries(ids, WORDS | JSONV, max_size=3)
        | JSONV
    )


@st.composite
def body_strategy(draw, with_labels: bool):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=300))  # raw bytes, often not UTF-8
    if kind == 1:
        depth = draw(st.integers(1, 40_000))  # nesting deep enough to break a recursive parser
        return (draw(st.sampled_from(["[", '{"a":'])) * depth).encode()
    if kind == 2:
        return b'{"request_id": "' + b"a" * draw(st.integers(60_000, 70_000)) + b'"}'
    if kind == 3:
        return json.dumps(draw(JSONV)).encode()
    body = {"request_id": draw(rid_strategy(0.5 if with_labels else 0.02))}
    who = draw(st.integers(0, 9))
    if who < 7:
        body["client_id"] = "CID"  # the live request's owner
    elif who == 7:
        body["client_id"] = draw(JSONV)  # another client, or not a string
    if with_labels and draw(st.booleans()) or kind > 6:
        body["labels"] = draw(labels_strategy())
    if draw(st.booleans()):
        body.update(draw(st.dictionaries(st.text(max_size=8), JSONV, max_size=3)))
    return body


def _materialise(body, t: OpenRequest) -> bytes:
    """Put the live request id and candidate ids into a generated body."""
    if isinstance(body, bytes):
        return body
    text = json.dumps(body)
    text = text.replace('"OPEN"', json.dumps(t.rid)).replace('"CID"', json.dumps(t.cid))
    text = text.replace('"ID0"', json.dumps(t.ids[0])).replace('"ID1"', json.dumps(t.ids[1]))
    return text.encode()


def _post(url, data: bytes, ctype: str):
    return requests.post(url, data=data, headers={"Content-Type": ctype}, timeout=30)


def _check(r, seen: dict) -> None:
    seen[r.status_code] = seen.get(r.status_code, 0) + 1
    assert r.status_code in OK_STATUS, (r.status_code, r.text[:500])
    if r.status_code != 200 and r.headers.get("Content-Type", "").startswith("application/json"):
        assert r.json().get("error"), r.text[:300]


STATS: dict[str, dict] = {}


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/papa/feedback", "/papa/cancel"])
def test_post_routes_survive_generated_bodies(comfy, target, route):
    seen = STATS.setdefault(route, {})

    @FUZZ
    @given(
        body=body_strategy(with_labels=route.endswith("feedback")),
        prefix=st.sampled_from(["", "/api"]),
        ctype=st.sampled_from(["application/json", "text/plain", "application/octet-stream"]),
    )
    def case(body, prefix, ctype):
        target.ensure_open()
        r = _post(comfy.url + prefix + route, _materialise(body, target), ctype)
        _check(r, seen)

    case()
    assert sum(seen.values()) == CASES
    print(route, "statuses", seen, "request re-opened", target.reopened, "times so far")
    assert requests.get(comfy.url + "/system_stats", timeout=10).ok


@pytest.mark.slow
def test_pending_route_survives_generated_query_strings(comfy, target):
    seen = STATS.setdefault("/papa/pending", {})

    @FUZZ
    @given(
        params=st.dictionaries(
            st.sampled_from(["client_id", "x", "client_id[]", ""]) | st.text(max_size=10),
            st.text(max_size=80) | TRICKY_IDS,
            max_size=3,
        ),
        raw=st.text(max_size=100),
        use_raw=st.booleans(),
        prefix=st.sampled_from(["", "/api"]),
    )
    def case(params, raw, use_raw, prefix):
        url = comfy.url + prefix + "/papa/pending"
        if use_raw:
            r = requests.get(url + "?" + requests.utils.quote(raw, safe="=&%"), timeout=30)
        else:
            r = requests.get(url, params=params, timeout=30)
        _check(r, seen)
        if r.status_code == 200:
            assert isinstance(r.json()["pending"], list)

    case()
    assert sum(seen.values()) == CASES
    print("/papa/pending statuses", seen)


@pytest.mark.slow
def test_fuzzing_wrote_nothing_outside_the_profile_folder(comfy, target):
    """Last in this module: every file the fuzzing changed is inside models/papa_profiles."""
    body = {"request_id": target.rid, "client_id": target.cid}
    requests.post(comfy.url + "/papa/cancel", json=body, timeout=10)
    for pid in target.prompts:
        wait(comfy.url, pid, 60)
    outside = changed_outside(target.before, snapshot(comfy.base), ALLOWED)
    assert outside == [], outside
    assert requests.get(comfy.url + "/system_stats", timeout=10).ok
