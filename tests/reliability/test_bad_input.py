"""Bad input through the real server: path-like fields, mismatched feedback, foreign models.

Each case must be refused with a message that says what to do, and create nothing outside the
profile folder (a snapshot of the server's base directory before and after).
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from host.papa_graphs import labelled_round
from safetensors.torch import load_file, save_file

from harness.graph import Graph, PromptRefused, queue, run, wait
from harness.paths import MODEL_CACHE
from harness.picker import answer, cancel, history, new_client_id, picker_graph, wait_pending
from harness.tiny_models import CHECKPOINT
from tests.reliability.rel_common import changed_outside, snapshot

FT = dict(steps=1, batch_size=2, timesteps_per_sample=1)
EVIL_NAMES = [
    "../escape",
    "../../../../tmp/escape",
    "/tmp/escape",
    "a/b",
    "a\\b",
    "..",
    ".",
    "x\x00y",
    "a" * 300,
    "ｅｓｃａｐｅ",  # fullwidth look-alikes
    "escap\u0435",  # Cyrillic 'е'
    "e\u202escape",  # right-to-left override
    "CON",
    "nul.txt",
    "LPT1",
    "C:\\Windows",
    "name.",
    "",
    " ",
    "%2e%2e",
]


def _profiles(server):
    return server.base / "models" / "papa_profiles"


def _refused_message(prompt) -> str:
    with pytest.raises(PromptRefused) as err:
        queue_url, graph = prompt
        queue(queue_url, graph)
    return json.dumps(err.value.body)


def test_unsafe_profile_names_are_refused_before_anything_runs(comfy):
    before = snapshot(comfy.base)
    for name in EVIL_NAMES:
        g = Graph()
        prof = g.node("PAPAProfile", name=name, rollback_to_round=-1, reset=False)
        g.node("PAPAExportLoRA", profile=prof[0], filename="papa_")
        msg = _refused_message((comfy.url, g))
        assert "Invalid profile name" in msg or "reserved on Windows" in msg, (name, msg)
    assert changed_outside(before, snapshot(comfy.base), ()) == []


@pytest.fixture(scope="module")
def trained(comfy, checkpoint_name):
    """A profile with one round at 32x32 on the tiny checkpoint."""
    r = run(comfy.url, labelled_round(checkpoint_name, "bad-input", "+ -", seed=3, **FT))
    assert r.ok, r.error()
    return "bad-input"


def test_unsafe_export_file_names_are_refused(comfy, trained):
    """A name with a separator, NUL, '..' path or device name is refused; anything accepted is
    a plain file directly inside models/loras."""
    loras = comfy.base / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    existing = set(loras.rglob("*"))  # other tests share this server's loras folder
    before = snapshot(comfy.base)
    must_refuse = [n for n in EVIL_NAMES if any(c in n for c in "/\\\x00") or n in ("..", "CON")]
    for filename in [*EVIL_NAMES, "../../", "/", "~/x", "$(id)", "a\nb"]:
        g = Graph()
        prof = g.node("PAPAProfile", name=trained, rollback_to_round=-1, reset=False)
        g.node("PAPAExportLoRA", node_id="export", profile=prof[0], filename=filename)
        r = run(comfy.url, g, timeout=60)
        if r.ok:
            assert filename not in must_refuse, filename
            lora = json.loads(r.outputs["export"]["text"][0])["lora"]
            assert "/" not in lora and "\\" not in lora and (loras / lora).is_file(), lora
        else:
            assert "name" in r.error()["exception_message"].lower(), (filename, r.error())
    allowed = ("models/papa_profiles", "models/loras")
    assert changed_outside(before, snapshot(comfy.base), allowed) == []
    for f in set(loras.rglob("*")) - existing:
        assert f.parent == loras and re.fullmatch(r".*_r0001_[0-9a-f]{8}\.safetensors", f.name), f


def test_candidates_of_another_size_are_refused_and_the_profile_trains_on(
    comfy, checkpoint_name, trained
):
    g = labelled_round(checkpoint_name, trained, "+ -", seed=4, **FT)
    for node in g.nodes.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=64, height=64)
    r = run(comfy.url, g)
    assert not r.ok
    msg = r.error()["exception_message"]
    assert "holds latents of shape (4, 4, 4)" in msg and "(4, 8, 8)" in msg, msg
    pending = _profiles(comfy) / trained / "pending"
    assert not pending.exists() or not any(pending.iterdir())
    r = run(comfy.url, labelled_round(checkpoint_name, trained, "- +", seed=5, **FT))
    assert r.ok, r.error()


@pytest.fixture(scope="module")
def other_checkpoint(comfy, tiny_models):
    """The tiny checkpoint with different UNet norm weights: another base model's fingerprint."""
    src = tiny_models / "checkpoints" / CHECKPOINT
    out = MODEL_CACHE / f"{tiny_models.name}-variant" / "papa_tiny_sd15_variant.safetensors"
    if not out.exists():
        sd = load_file(str(src))
        keys = [k for k in sd if k.startswith("model.diffusion_model.") and "norm" in k]
        for k in keys:
            if sd[k].ndim == 1 and k.endswith("weight"):
                sd[k] = sd[k] * 1.01
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file(sd, str(out.with_suffix(".tmp")))
        out.with_suffix(".tmp").rename(out)
    link = comfy.base / "models" / "checkpoints" / out.name
    if not link.exists():
        link.symlink_to(out)
    return out.name


def test_profile_from_another_base_model_is_refused(comfy, trained, other_checkpoint):
    r = run(comfy.url, labelled_round(other_checkpoint, trained, "+ -", seed=6, **FT))
    assert not r.ok
    msg = r.error()["exception_message"]
    assert "trained on another base model" in msg and "fingerprint" in msg, msg


def test_feedback_for_unknown_candidates_wrong_count_or_another_request_is_refused(
    comfy, checkpoint_name
):
    # Request A is answered first (one prompt runs at a time: two pickers never wait together).
    cid = new_client_id()
    a_prompt = queue(comfy.url, picker_graph(checkpoint_name, count=2, seed=71).prompt(), cid)
    a = wait_pending(comfy.url, cid)
    ids_a = [c["id"] for c in a["candidates"]]
    assert answer(comfy.url, a["request_id"], ["like", "skip"]).status_code == 200
    assert wait(comfy.url, a_prompt, 60).ok
    cid_b = new_client_id()
    g = picker_graph(checkpoint_name, count=2, seed=81, profile="bad-feedback")
    b_prompt = queue(comfy.url, g.prompt(), cid_b)
    b = wait_pending(comfy.url, cid_b)
    try:
        cases = [
            ({ids_a[0]: "like", ids_a[1]: "dislike"}, "Unknown candidate"),  # A's labels to B
            ({"not-a-candidate": "like"}, "Unknown candidate"),
            (["like"], "1 labels for 2 candidates"),
            (["like", "like", "like"], "3 labels for 2 candidates"),
        ]
        for labels, needle in cases:
            r = answer(comfy.url, b["request_id"], labels)
            assert r.status_code == 400 and needle in r.json()["error"], (labels, r.text)
        late = answer(comfy.url, a["request_id"], [c["id"] for c in b["candidates"]])
        assert late.status_code == 409 and "answered" in late.json()["error"], late.text
        for rid in ("../" + b["request_id"], b["request_id"].upper(), "x" * 65, ""):
            r = answer(comfy.url, rid, ["like", "like"])
            assert r.status_code in (400, 409) and r.json()["error"], (rid, r.text)
        assert history(comfy.base, "bad-feedback") == []
    finally:
        cancel(comfy.url, b["request_id"])
    assert "cancelled" in wait(comfy.url, b_prompt, 60).error()["exception_message"]
    assert requests.get(comfy.url + "/papa/pending", timeout=10).json()["pending"] == []
