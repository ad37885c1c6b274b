"""The pack loads in a real ComfyUI: every node is registered, no import failure."""

import requests

PACK_NODES = {
    "PAPACandidateSampler",
    "PAPAPreferencePicker",
    "PAPADigitsDemoLoader",
    "PAPASimulatedUser",
}


def test_every_node_is_in_object_info(comfy):
    info = requests.get(comfy.url + "/object_info", timeout=30).json()
    missing = PACK_NODES - info.keys()
    assert not missing, f"nodes missing from /object_info: {missing}"
    for node_id in PACK_NODES:
        assert info[node_id]["python_module"].startswith("custom_nodes.comfy-papa")


def test_no_import_failure_in_log(comfy):
    log = comfy.log()
    assert "comfy-papa" in log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line]
    assert not any("comfy-papa" in line for line in failed), failed


def test_inputs_have_tooltips(comfy):
    info = requests.get(comfy.url + "/object_info", timeout=30).json()
    for node_id in PACK_NODES:
        for group in ("required", "optional"):
            for name, spec in info[node_id]["input"].get(group, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
