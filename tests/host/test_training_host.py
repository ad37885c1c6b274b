"""Training on the pinned ComfyUI: every adapter is trained or the round fails loudly, also with
offloaded weights; the model-kind table against the host's own model-sampling classes."""

import sys
import time
import uuid

import pytest
from papa_graphs import labelled_round

from comfy_papa.profile.store import Profile
from harness.graph import interrupt, queue, run, wait
from harness.paths import COMFYUI
from harness.ws import WsClient


def _profile(server, name):
    return Profile.open(server.base / "models" / "papa_profiles", name, create=False)


def test_an_adapter_the_host_never_applies_fails_the_round_and_saves_nothing(
    own_comfy, checkpoint_name
):
    """One adapter is left without its weight wrapper (COMFY_PAPA_TEST_UNATTACHED, a test-only
    path in attach_trainable), as dynamic VRAM or a partial load would leave a layer: the round
    must fail with a message that says what happened and what to do, and commit nothing."""
    server = own_comfy(env={"COMFY_PAPA_TEST_UNATTACHED": "1"})
    result = run(server.url, labelled_round(checkpoint_name, "cov", "+ - +", steps=2))
    assert not result.ok
    message = result.error()["exception_message"]
    assert "1 of " in message and "were never applied" in message, message
    assert "wrapper was never called" in message and "--disable-dynamic-vram" in message, message
    assert _profile(server, "cov").round == 0


def test_offloaded_weights_still_train_every_adapter(own_comfy, checkpoint_name):
    """Weights unloaded to the offload device after the training load (the host then casts them
    per use, as for a partially loaded model): the round trains, and every adapter moved."""
    server = own_comfy(env={"COMFY_PAPA_TEST_OFFLOAD_BYTES": str(10**12)})
    result = run(server.url, labelled_round(checkpoint_name, "off", "+ - +", steps=3))
    assert result.ok, result.error()
    assert "Unloaded partially" in server.log(), "the test hook must have offloaded weights"
    adapter = _profile(server, "off").load_round().adapter
    ups = {k: v for k, v in adapter.items() if k.endswith(".lora_up.weight")}
    assert ups and all(float(v.abs().max()) > 0 for v in ups.values()), [
        k for k, v in ups.items() if float(v.abs().max()) == 0
    ]


def test_interrupt_stops_training_within_a_step_and_commits_nothing(comfy, checkpoint_name):
    """Cancel while the round trains (the Fine-tune node has reported a step): the run ends
    interrupted long before its 10000 steps and the profile stays where it was."""
    client = uuid.uuid4().hex
    ws = WsClient(comfy.url, client)
    try:
        g = labelled_round(checkpoint_name, "ft-interrupt", "+ - +", steps=10000)
        prompt_id = queue(comfy.url, g, client)
        deadline = time.monotonic() + 240
        while not any(d.get("node") == "ft" for d in ws.of_type("progress")):
            assert time.monotonic() < deadline, "training never reported a step"
            time.sleep(0.1)
        interrupt(comfy.url)
        result = wait(comfy.url, prompt_id, 120)
    finally:
        ws.close()
    assert result.interrupted() and not result.ok
    steps = [d["value"] for d in ws.of_type("progress") if d.get("node") == "ft"]
    assert max(steps) < 10000, max(steps)
    assert _profile(comfy, "ft-interrupt").round == 0


@pytest.fixture(scope="module")
def host_modules():
    """The pinned host's comfy.model_sampling and our host/train module, imported in-process
    with the host's command line parsed as `--cpu` (as the test servers run), the way main.py
    enables it."""
    sys.path.insert(0, str(COMFYUI))
    argv = sys.argv
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        sys.argv = [str(COMFYUI / "main.py"), "--cpu"]
        import comfy.model_sampling as ms

        from comfy_papa.host import train
    finally:
        sys.argv = argv
        sys.path.remove(str(COMFYUI))
    return ms, train


def _sampling(schedule, kind_cls):
    """A model-sampling object built as ComfyUI builds one (model_base.model_sampling)."""

    class ModelSampling(schedule, kind_cls):
        pass

    return ModelSampling()


def test_model_kind_table_on_the_host_classes(host_modules):
    ms, train = host_modules
    discrete, flow = ms.ModelSamplingDiscrete, ms.ModelSamplingDiscreteFlow
    assert train.model_kind(_sampling(discrete, ms.EPS)) == "eps"
    assert train.model_kind(_sampling(discrete, ms.V_PREDICTION)) == "v"
    assert train.model_kind(_sampling(ms.ModelSamplingContinuousEDM, ms.EDM)) == "v"
    assert train.model_kind(_sampling(ms.StableCascadeSampling, ms.EPS)) == "eps"
    assert train.model_kind(_sampling(discrete, ms.X0)) == "x0"
    assert train.model_kind(_sampling(flow, ms.CONST)) == "flow"
    assert train.model_kind(_sampling(ms.ModelSamplingFlux, ms.CONST)) == "flow"
    # IMG_TO_IMG subclasses X0 (so EPS): isinstance would have trained it as eps.
    with pytest.raises(ValueError, match=r"sampling type is IMG_TO_IMG .*image-to-image"):
        train.model_kind(_sampling(discrete, ms.IMG_TO_IMG))
    with pytest.raises(ValueError, match=r"sampling type is COSMOS_RFLOW"):
        train.model_kind(_sampling(ms.ModelSamplingCosmosRFlow, ms.COSMOS_RFLOW))


def test_model_kind_refuses_subclasses_it_does_not_name(host_modules):
    """Exact classes: a subclass of a supported type (here core's LCM, an EPS subclass with its
    own denoising) is refused by name rather than trained as its parent."""
    ms, train = host_modules
    sys.path.insert(0, str(COMFYUI))
    try:
        from comfy_extras.nodes_model_advanced import LCM
    finally:
        sys.path.remove(str(COMFYUI))
    with pytest.raises(ValueError, match=r"sampling type is LCM .*not a type PAPA knows"):
        train.model_kind(_sampling(ms.ModelSamplingDiscrete, LCM))


def test_model_kind_names_the_types_of_newer_hosts_only_where_they_exist(host_modules):
    """0.38's V_PREDICTION_DDPM, IMG_TO_IMG_FLOW and IMG_TO_IMG_VELOCITY are not in the pinned
    0.3.75: the table looks them up by name, so their absence costs nothing here and they are
    handled (v) or refused (image-to-image) by name where they exist."""
    ms, train = host_modules
    assert train.SUPPORTED_SAMPLING["V_PREDICTION_DDPM"] == "v"
    assert {"IMG_TO_IMG_FLOW", "IMG_TO_IMG_VELOCITY"} <= set(train.REFUSED_SAMPLING)
    with pytest.raises(ValueError) as e:
        train.model_kind(_sampling(ms.ModelSamplingDiscrete, ms.IMG_TO_IMG))
    supported = str(e.value).split("Supported types: ")[1].split(".")[0].split(", ")
    assert supported == [n for n in train.SUPPORTED_SAMPLING if hasattr(ms, n)]


class _Patcher:
    """A stand-in MODEL with 0.38's patcher interface (is_dynamic, clone(disable_dynamic=...))."""

    def __init__(self, dynamic, can_disable=True):
        self.dynamic, self.can_disable, self.clones = dynamic, can_disable, []

    def is_dynamic(self):
        return self.dynamic

    def clone(self, disable_dynamic=False):
        self.clones.append(disable_dynamic)
        if disable_dynamic and not self.can_disable:
            raise RuntimeError("Cannot create non-dynamic delegate")
        return _Patcher(self.dynamic and not disable_dynamic)


def test_training_clone_asks_a_dynamic_model_for_an_ordinary_patcher(host_modules):
    _, train = host_modules
    dynamic = _Patcher(dynamic=True)
    assert not train.training_clone(dynamic).is_dynamic() and dynamic.clones == [True]
    ordinary = _Patcher(dynamic=False)
    train.training_clone(ordinary)
    assert ordinary.clones == [False]
    with pytest.raises(RuntimeError, match="--disable-dynamic-vram"):
        train.training_clone(_Patcher(dynamic=True, can_disable=False))
