"""Profiles survive a crash (kill -9 during training) and resume exactly after a restart."""

import time

import torch
from papa_graphs import labelled_round

from comfy_papa.profile.store import Profile
from harness.graph import queue, run

FT = dict(steps=2, learning_rate=1e-3)


def _profile(server, name) -> Profile:
    return Profile.open(server.base / "models" / "papa_profiles", name, create=False)


def test_kill_during_finetune_keeps_the_last_round_and_every_label(own_comfy, checkpoint_name):
    server = own_comfy()
    r = run(server.url, labelled_round(checkpoint_name, "crash", "+ - + -", seed=1, **FT))
    assert r.ok, r.error()
    queue(server.url, labelled_round(checkpoint_name, "crash", "- + + -", seed=2, steps=5000))
    pending = server.base / "models" / "papa_profiles" / "crash" / "pending"
    deadline = time.monotonic() + 120
    while not list(pending.glob("*.safetensors")):
        assert time.monotonic() < deadline, "the fine-tune never recorded its feedback"
        time.sleep(0.2)
    time.sleep(3)  # well inside the 5000 training steps
    server.kill()

    p = _profile(server, "crash")
    assert p.round == 1
    assert [h["label"] for h in p.history()] == [1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0]
    assert len(p.pending()) == 1, "the interrupted round's feedback must wait for the next one"
    assert len(p.load_round().replay) == 4

    server.start()
    r = run(server.url, labelled_round(checkpoint_name, "crash", "+ +", seed=3, **FT))
    assert r.ok, r.error()
    p = _profile(server, "crash")
    assert p.round == 2 and p.pending() == []
    assert len(p.load_round().replay) == 4 + 4 + 2
    assert not list(p.dir.rglob(".tmp-*")), "no temp files may be left behind"


def test_round_after_restart_equals_round_of_an_uninterrupted_run(own_comfy, checkpoint_name):
    server = own_comfy()
    for name in ("steady", "restarted"):
        r = run(server.url, labelled_round(checkpoint_name, name, "+ - + -", seed=7, **FT))
        assert r.ok, r.error()
    r = run(server.url, labelled_round(checkpoint_name, "steady", "- + - +", seed=8, **FT))
    assert r.ok, r.error()
    server.restart()
    r = run(server.url, labelled_round(checkpoint_name, "restarted", "- + - +", seed=8, **FT))
    assert r.ok, r.error()
    a, b = _profile(server, "steady").load_round(2), _profile(server, "restarted").load_round(2)
    assert a.adapter.keys() == b.adapter.keys()
    for k in a.adapter:
        assert torch.equal(a.adapter[k], b.adapter[k]), k
    for k in a.optimizer:
        assert torch.equal(a.optimizer[k], b.optimizer[k]), k
    assert torch.equal(a.replay.latents, b.replay.latents)
