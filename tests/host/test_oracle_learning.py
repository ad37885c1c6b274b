"""PAPA and EPAPA learn an artist's taste: 5 oracle-labelled rounds of 8 candidates each.

The digits demo model, the real nodes in the real server, and a synthetic oracle that likes
samples brighter (more ink) than the base model's median and inside the range of the base
model's own samples. The margin is chosen from bench/learning_margin.py (BENCHMARKS.md): on the
retrained demo model both methods gained 0.41-0.47 on each of 3 seeds (PAPA 0.53/0.56/0.59 ->
1.00; EPAPA -> 0.94/1.00/1.00); the test asserts 0.3 on seed 0.
"""

import pytest

from harness.oracle_loop import DIGITS_FINETUNE, Source, run_loop

MARGIN = 0.3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["PAPA", "EPAPA"])
def test_five_oracle_rounds_raise_the_liked_fraction_well_above_the_base(comfy, method):
    res = run_loop(
        comfy, Source(), f"learn-{method}", dict(DIGITS_FINETUNE, seed=0, method=method), rounds=5
    )
    assert 0.2 <= res["before"] <= 0.8, res  # the threshold is the base model's median
    assert res["after"] >= res["before"] + MARGIN, res


# The digit oracle (the paper's simulated user: likes 1, 4, 7 and 9) with the node's defaults:
# the liked fraction must rise and the preferred digits must stay balanced (no collapse onto one
# digit). Measured on this loop (8 sampling steps, seed 0; CPU runs are deterministic): liked
# 0.19 (32 samples) -> 0.41 (64 samples) after 50 labels, preferred-class entropy 0.69 -> 0.91;
# the test asserts under half that gain and an entropy floor under the measured one. Benchmark
# numbers for the same defaults: BENCHMARKS.md.
DIGITS_ROUNDS = 5
DIGITS_MARGIN = 0.1
DIGITS_MIN_ENTROPY = 0.75


@pytest.mark.slow
def test_the_digit_oracle_is_learned_without_collapse(comfy):
    src = Source(oracle="digits", preferred="1,4,7,9")
    res = run_loop(
        comfy,
        src,
        "learn-digits",
        dict(DIGITS_FINETUNE, seed=0, method="PAPA"),
        rounds=DIGITS_ROUNDS,
        count=10,
    )
    assert res["after_64"] >= res["before"] + DIGITS_MARGIN, res
    assert res["entropy_after"] >= DIGITS_MIN_ENTROPY, res
