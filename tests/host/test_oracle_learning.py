"""EPAPA learns an artist's taste: 5 oracle-labelled rounds of 8 candidates each.

The digits demo model, the real nodes in the real server, and a synthetic oracle that likes
samples brighter (more ink) than the base model's median and inside the range of the base
model's own samples. The margin is chosen from bench/learning_margin.py (BENCHMARKS.md): EPAPA
gained 0.62 on both seeds measured. PAPA on the same settings is not asserted: it drove the
samples out of range (liked 0.38 -> 0.00 on both seeds), an open problem noted in BENCHMARKS.md.
"""

import pytest

from harness.oracle_loop import Source, run_loop

FINETUNE = dict(
    cut=0.4,
    steps=10,
    learning_rate=5e-4,
    rank=8,
    alpha=8.0,
    c_pref=0.1,
    c_sim=0.009,
    batch_size=8,
    timesteps_per_sample=2,
    seed=0,
    gradient_checkpointing=False,
)
MARGIN = 0.3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["EPAPA"])
def test_five_oracle_rounds_raise_the_liked_fraction_well_above_the_base(comfy, method):
    res = run_loop(comfy, Source(), f"learn-{method}", dict(FINETUNE, method=method), rounds=5)
    assert 0.2 <= res["before"] <= 0.8, res  # the threshold is the base model's median
    assert res["after"] >= res["before"] + MARGIN, res
