"""PAPA and EPAPA learn an artist's taste: 5 oracle-labelled rounds of 8 candidates each.

The digits demo model, the real nodes in the real server, and a synthetic oracle that likes
samples brighter (more ink) than the base model's median and inside the range of the base
model's own samples. The margin was chosen from bench/learning_margin.py (BENCHMARKS.md): with the
earlier defaults both methods gained 0.41-0.47 on each of 3 seeds (PAPA 0.53/0.56/0.59 -> 1.00;
EPAPA -> 0.94/1.00/1.00). With the fourth session's dislike settings (dislikes only at the
noisier 70% of the schedule, weight 1, cap 2) PAPA on seed 0 goes 0.53 -> 0.75 here: "more ink" is
partly drawn at the clean steps where dislikes no longer act (dislikes from 0.15 reach the old
margin here but lose 0.1-0.2 on the digit preferences, BENCHMARKS.md). The test asserts 0.2.
"""

import pytest

from harness.oracle_loop import DIGITS_FINETUNE, Source, run_loop

MARGIN = 0.2


@pytest.mark.slow
@pytest.mark.parametrize("method", ["PAPA", "EPAPA"])
def test_five_oracle_rounds_raise_the_liked_fraction_well_above_the_base(comfy, method):
    res = run_loop(
        comfy, Source(), f"learn-{method}", dict(DIGITS_FINETUNE, seed=0, method=method), rounds=5
    )
    assert 0.2 <= res["before"] <= 0.8, res  # the threshold is the base model's median
    assert res["after"] >= res["before"] + MARGIN, res


# The digit oracle (the paper's simulated user: likes 1, 4, 7 and 9) with the node's defaults:
# the liked fraction must rise and the preferred digits must not collapse onto one or two digits.
# The margin and floor were set on the epsilon demo model (liked 0.19 -> 0.53 after 50 labels,
# entropy 0.75 on this loop: 8 sampling steps, seed 0; CPU runs are deterministic); the test
# passes unchanged on the v-prediction model with the sixth session's defaults (snr_floor 0.05,
# dislike cap 1.5), which gain 0.5 on the benchmark by 50 labels (BENCHMARKS.md). It asserts a gain
# well under that and an entropy floor that two digits alone (<= 0.5) or one digit (0) cannot reach.
DIGITS_ROUNDS = 5
DIGITS_MARGIN = 0.1
DIGITS_MIN_ENTROPY = 0.65


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
