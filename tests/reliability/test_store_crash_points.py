"""SIGKILL at every write point of the profile store (pure Python, no server).

A first run of the scripted profile life (store_crash_driver.SCRIPT) traces every write point the
store reaches; then one forked child per (point, occurrence) kills itself there with a real
SIGKILL through the store's fault hook (COMFY_PAPA_FAULT). After each crash the profile must open,
sit at a complete round, hold every acknowledged label exactly once and no half-written request,
leave no temp file, keep every committed round (current or archived), and train on.
"""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from comfy_papa.profile.store import Profile
from tests.reliability.store_crash_driver import NAME, SCRIPT, next_round

DRIVER = Path(__file__).with_name("store_crash_driver.py")


@pytest.fixture(scope="module")
def crash_cases(tmp_path_factory):
    base = tmp_path_factory.mktemp("store-crash")
    trace_root = base / "trace"
    trace_root.mkdir()
    subprocess.run([sys.executable, str(DRIVER), "trace", str(trace_root)], check=True)
    points = (trace_root / "trace.txt").read_text().split()
    seen: Counter = Counter()
    cases = []
    for name in points:
        cases.append((name, seen[name]))
        seen[name] += 1
    (base / "cases.json").write_text(json.dumps(cases))
    out = subprocess.run(
        [sys.executable, str(DRIVER), "crash", str(base / "cases"), str(base / "cases.json")],
        check=True,
        capture_output=True,
        text=True,
    )
    return points, json.loads(out.stdout)


def _expected(acked_ops: int):
    """Round after the acknowledged ops, and the rounds the op in progress may leave."""
    rnd = 0
    for op, arg in SCRIPT[:acked_ops]:
        if op in ("commit", "rollback"):
            rnd = arg
    allowed = {rnd}
    if acked_ops < len(SCRIPT) and SCRIPT[acked_ops][0] in ("commit", "rollback"):
        allowed.add(SCRIPT[acked_ops][1])
    return rnd, allowed


def test_every_write_point_is_crashed_and_recovered(crash_cases):
    points, results = crash_cases
    kinds = {p.split(":")[0] for p in points}
    assert {"write", "append", "feedback", "commit", "rollback"} <= kinds, kinds
    assert len(results) == len(points) >= 60, len(results)
    failures = []
    for case in results:
        try:
            _check_case(case)
        except AssertionError as e:
            failures.append(f"{case['point']}#{case['skip']}: {e}")
    assert not failures, "\n".join(failures)


def _check_case(case):
    root = Path(case["dir"])
    assert case["killed"], "the child was not killed at its point"
    acks = (root / "acks.txt").read_text().split("\n") if (root / "acks.txt").exists() else []
    acks = [a for a in acks if a]
    if "open" not in acks:
        if not (root / NAME / "manifest.json").exists():
            assert not list(root.rglob("manifest.json"))
            return  # crashed while creating the profile: nothing exists, nothing to check
    acked_ops = len(acks) - 1 if "open" in acks else 0
    _, allowed = _expected(acked_ops)

    p = Profile.open(root, NAME, create=False)
    leftovers = [str(f.relative_to(root)) for f in root.rglob(".tmp-*")]
    assert not leftovers, f"temp files left: {leftovers}"
    assert p.round in allowed, f"round {p.round}, expected one of {allowed}"
    state = p.load_round()  # every checksum of the current round verifies

    script_labels = {a[0]: a[1] for op, a in SCRIPT if op == "feedback"}
    rows = p.history()
    keys = [(r["request_id"], r["candidate"]) for r in rows]
    assert len(keys) == len(set(keys)), f"duplicated history rows: {keys}"
    by_req: dict[str, dict[str, float]] = {}
    for r in rows:
        by_req.setdefault(r["request_id"], {})[r["candidate"]] = r["label"]
    for rid, got in by_req.items():
        want = {f"c{i}": v for i, v in enumerate(script_labels[rid])}
        assert got == want, f"request {rid} half-written in history: {got} != {want}"
    for a in acks:
        if a.startswith("feedback "):
            assert a.split()[1] in by_req, f"acknowledged {a} missing from history"

    consumed = set(p.manifest.get("consumed_requests", []))
    pending = {f.request_id for f in p.pending()}
    assert pending == set(by_req) - consumed, (pending, set(by_req), consumed)
    for rid_cid, label in zip(state.replay.ids, state.replay.labels.tolist(), strict=True):
        rid, cid = rid_cid.split(":")
        assert by_req[rid][cid] == label, f"replay {rid_cid} disagrees with history"

    committed = sum(1 for a in acks if a.startswith("commit "))
    complete = [d for d in p.dir.rglob("r[0-9]*") if (d / "round.json").exists()]
    assert len(complete) >= committed, f"{committed} commits acknowledged, {len(complete)} kept"

    nxt, consumed_now = next_round(p)  # the profile trains on after the crash
    p.commit_round(nxt, "fp-tiny", {"method": "PAPA", "rank": 2}, consumed_now)
    q = Profile.open(root, NAME, create=False)
    assert q.round == nxt.round and q.pending() == []
    assert len(q.load_round().replay) == len(state.replay) + sum(len(by_req[r]) for r in pending)
