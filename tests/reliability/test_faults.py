"""Faults injected into a real server: SIGKILL while the picker waits (answered or not), SIGKILL
inside a profile write (the store's COMFY_PAPA_FAULT hook, real SIGKILL), disk full (ENOSPC at
the adapter write), NaN latents, and a corrupted round file. Training-time kills:
tests/host/test_profile_durability.py."""

from __future__ import annotations

import pytest
import requests
import torch
from host.papa_graphs import base_nodes, finetune_node, labelled_round, sampler_node
from safetensors.torch import save_file

from comfy_papa.profile.store import Profile
from harness.comfy_server import ComfyServer, make_base_directory
from harness.graph import Graph, queue, run
from harness.picker import answer, history, new_client_id, picker_graph, wait_pending

FT = dict(steps=1, batch_size=2, timesteps_per_sample=1)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models):
    """One server of this module's own, restarted with whatever fault the test needs."""
    base = make_base_directory(tmp_path_factory.mktemp("faults"), tiny_models)
    s = ComfyServer(base)
    yield s
    s.stop()


def _start(server: ComfyServer, **env) -> ComfyServer:
    """(Re)start with exactly this fault environment; a running server with it is kept."""
    env = {k: str(v) for k, v in env.items()}
    if server.proc is not None and server.proc.poll() is None and server.env == env:
        return server
    server.stop()
    server.env = env
    return server.start()


def _open(server, name) -> Profile:
    return Profile.open(server.base / "models" / "papa_profiles", name, create=False)


def _no_temp(server, name):
    d = server.base / "models" / "papa_profiles" / name
    return not list(d.rglob(".tmp-*"))


def test_disk_full_while_saving_a_round_keeps_the_previous_round_and_says_why(
    server, checkpoint_name
):
    _start(  # the first adapter write goes through, the second finds the disk full
        server,
        COMFY_PAPA_FAULT="write:adapter.safetensors:written",
        COMFY_PAPA_FAULT_ACTION="enospc",
        COMFY_PAPA_FAULT_SKIP=1,
    )
    r = run(server.url, labelled_round(checkpoint_name, "full", "+ -", seed=1, **FT))
    assert r.ok, r.error()
    r = run(server.url, labelled_round(checkpoint_name, "full", "- +", seed=2, **FT))
    assert not r.ok
    msg = r.error()["exception_message"]
    assert "Disk full while saving round 2" in msg and "still at round 1" in msg, msg
    p = _open(server, "full")
    assert p.round == 1 and len(p.load_round().replay) == 2 and _no_temp(server, "full")
    assert len(p.pending()) == 1, "the labels of the failed round wait for the next one"


def test_kill_inside_a_round_commit_then_restart_trains_on(server, checkpoint_name):
    _start(server, COMFY_PAPA_FAULT="commit:round-renamed")
    queue(server.url, labelled_round(checkpoint_name, "killed", "+ -", seed=3, **FT))
    assert server.proc.wait(180) == -9, "the fault hook should have SIGKILLed the server"
    server.kill()
    p = _open(server, "killed")  # what the restarted server sees (recovery on open)
    assert p.round == 0 and [h["label"] for h in p.history()] == [1.0, -1.0]
    assert len(p.pending()) == 1 and _no_temp(server, "killed")
    assert not (p.dir / "rounds" / "r0001").exists(), "an uncommitted round must not survive"
    _start(server)
    r = run(server.url, labelled_round(checkpoint_name, "killed", "- +", seed=4, **FT))
    assert r.ok, r.error()
    p = _open(server, "killed")
    assert p.round == 1 and len(p.load_round().replay) == 4 and p.pending() == []


def test_kill_while_the_picker_waits(server, checkpoint_name):
    """Answered with a 200, then killed: the labels are in the history after restart.
    Killed while still waiting: nothing of that request exists anywhere."""
    _start(server)
    cid = new_client_id()
    queue(server.url, picker_graph(checkpoint_name, count=3, profile="wait").prompt(), cid)
    req = wait_pending(server.url, cid)
    r = answer(server.url, req["request_id"], ["like", "dislike", "skip"])
    assert r.status_code == 200, r.text
    server.kill()  # the moment the receipt is out
    _start(server)
    rows = history(server.base, "wait")
    assert [(h["request_id"], h["label"]) for h in rows] == [
        (req["request_id"], v) for v in (1.0, -1.0, 0.0)
    ]
    cid = new_client_id()
    queue(server.url, picker_graph(checkpoint_name, count=2, seed=5, profile="wait").prompt(), cid)
    unanswered = wait_pending(server.url, cid)
    server.kill()
    p = _open(server, "wait")
    assert [h["request_id"] for h in p.history()] == [req["request_id"]] * 3
    assert [x.request_id for x in p.pending()] == [req["request_id"]]
    assert unanswered["request_id"] not in (p.dir / "history.jsonl").read_text()
    assert _no_temp(server, "wait")


def test_nan_latents_are_refused_and_the_profile_trains_on(comfy, checkpoint_name):
    """A NaN latent made real: a .latent file through core LoadLatent into the sampler."""
    server = comfy
    inp = server.base / "input"
    inp.mkdir(exist_ok=True)
    lat = torch.zeros(1, 4, 4, 4)
    lat[0, 0, 0, 0] = float("nan")
    save_file(
        {"latent_tensor": lat, "latent_format_version_0": torch.tensor([])},
        str(inp / "nan.latent"),
    )
    g = Graph()
    ckpt, pos, neg, _ = base_nodes(g, checkpoint_name)
    prof = g.node("PAPAProfile", name="nan", rollback_to_round=-1, reset=False)
    loaded = g.node("LoadLatent", latent="nan.latent")
    cand = sampler_node(g, ckpt[0], pos, neg, loaded, count=2, seed=1)
    fb = g.node("PAPALabels", metadata=cand[1], labels="+ -", profile=prof[0])
    finetune_node(g, ckpt[0], fb[0], prof[0], **FT)
    r = run(server.url, g)
    assert not r.ok
    assert "non-finite" in r.error()["exception_message"], r.error()["exception_message"]
    p = _open(server, "nan")
    assert p.round == 0 and p.pending() == [] and p.history() == []
    r = run(server.url, labelled_round(checkpoint_name, "nan", "+ -", seed=6, **FT))
    assert r.ok, r.error()
    state = _open(server, "nan").load_round()
    assert all(torch.isfinite(v).all() for v in state.adapter.values())


def test_corrupted_round_file_is_reported_through_the_server(comfy, checkpoint_name):
    server = comfy
    d = server.base / "models" / "papa_profiles" / "nan"
    path = d / "rounds" / "r0001" / "adapter.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    before = {f: f.read_bytes() for f in d.rglob("*") if f.is_file()}
    r = run(server.url, labelled_round(checkpoint_name, "nan", "+ -", seed=7, **FT))
    assert not r.ok
    msg = r.error()["exception_message"]
    assert "adapter.safetensors" in msg and "roll back to round 0" in msg, msg
    assert {f: f.read_bytes() for f in d.rglob("*") if f.is_file()} == before
    g = Graph()
    prof = g.node("PAPAProfile", name="nan", rollback_to_round=0, reset=False)
    g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename="papa_")
    r = run(server.url, g)  # roll back (the export then says there is no round yet)
    assert "no trained round" in r.error()["exception_message"]
    assert _open(server, "nan").round == 0


def test_kill_inside_a_label_write_leaves_all_or_nothing(server, checkpoint_name):
    _start(server, COMFY_PAPA_FAULT="feedback:pending-saved")
    cid = new_client_id()
    queue(server.url, picker_graph(checkpoint_name, count=3, profile="torn").prompt(), cid)
    req = wait_pending(server.url, cid)
    with pytest.raises(requests.ConnectionError):  # killed before the 200 receipt
        answer(server.url, req["request_id"], ["like", "dislike", "skip"])
    server.proc.wait(60)
    server.kill()
    p = _open(server, "torn")  # what the restarted server sees (recovery on open)
    rows = [(h["request_id"], h["label"]) for h in p.history()]
    # not acknowledged, but whole: the pending file is the commit point, the history follows it
    assert rows == [(req["request_id"], v) for v in (1.0, -1.0, 0.0)], rows
    assert [x.request_id for x in p.pending()] == [req["request_id"]] and _no_temp(server, "torn")
