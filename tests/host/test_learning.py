"""PAPA and EPAPA learn an artist's taste: 5 oracle-labelled rounds of 8 candidates each.

The digits demo model, the real nodes in the real server, and a synthetic oracle that likes
samples brighter (more ink) than the base model's median. The margin is chosen from
bench/learning_margin.py over 3 seeds (see BENCHMARKS.md): the smallest gain measured was well
above the asserted one.
"""

import pytest

from harness.oracle_loop import Source, run_loop

FINETUNE = dict(
    cut=0.4,
    steps=10,
    learning_rate=2e-3,
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
@pytest.mark.parametrize("method", ["PAPA", "EPAPA"])
def test_five_oracle_rounds_raise_the_liked_fraction_well_above_the_base(comfy, method):
    res = run_loop(comfy, Source(), f"learn-{method}", dict(FINETUNE, method=method), rounds=5)
    assert 0.2 <= res["before"] <= 0.8, res  # the threshold is the base model's median
    assert res["after"] >= res["before"] + MARGIN, res
