"""`bench/digits.py` on the ComfyUI backend (its default): PAPA through the real Fine-tune node.

The smoke run the benchmark's numbers depend on: two rounds in a worker process, the Fine-tune
node called as the node pack calls it (its own inputs plus an `options` dict), one `--set` of a
setting the Training Options node does not show. It broke once when the node's inputs moved.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from harness.paths import REPO, VENV_PYTHON


@pytest.mark.slow
def test_digits_bench_runs_papa_through_the_finetune_node(tmp_path):
    out = tmp_path / "digits.json"
    cmd = [str(VENV_PYTHON), str(REPO / "bench" / "digits.py"), "--methods", "papa"]
    cmd += ["--rounds", "2", "--seeds", "1", "--candidates", "4", "--eval-samples", "8"]
    cmd += ["--eval-every", "1", "--steps", "4", "--threads", "1", "--jobs", "1"]
    cmd += ["--set", "steps=2", "--set", "dislike_from=0.2", "--out", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]

    r = json.loads(out.read_text())["methods"]["papa"]
    assert r["errors"] == [], run.stderr[-4000:]
    assert r["rounds_completed"] == [2], run.stderr[-4000:]
    rounds = r["seeds"][0]["rounds"]
    assert all(x["passes"] > 0 for x in rounds), rounds  # both rounds trained
    assert r["labels"] == [0, 4, 8], r["labels"]
