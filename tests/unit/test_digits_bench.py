"""bench/digits.py's pure pieces: the metrics, the evaluation points, the merge of worker parts."""

import pytest
import torch

from bench import digits


def probs_for(classes: list[int], confidence: float = 0.9) -> torch.Tensor:
    p = torch.full((len(classes), 10), (1 - confidence) / 9)
    p[torch.arange(len(classes)), torch.tensor(classes)] = confidence
    return p


def test_metrics_count_preferred_share_and_confidence():
    classes = [1, 1, 1, 4, 7, 9, 3, 3]
    labels = [1 if c in (1, 4, 7, 9) else -1 for c in classes]
    m = digits.digit_metrics(probs_for(classes, 0.8), labels, [1, 4, 7, 9])
    assert m["preferred"] == pytest.approx(6 / 8)
    assert m["min_class_share"] == pytest.approx(1 / 6)  # 4, 7 and 9 once among 6 preferred
    assert m["confidence"] == pytest.approx(0.8)
    assert m["class_counts"][1] == 3 and m["class_counts"][3] == 2


def test_collapse_onto_one_preferred_digit_has_zero_min_share():
    m = digits.digit_metrics(probs_for([7, 7, 7, 2]), [1, 1, 1, -1], [1, 4, 7, 9])
    assert m["min_class_share"] == 0.0


def test_no_preferred_sample_and_rule_only_users():
    assert digits.digit_metrics(probs_for([3, 3]), [-1, -1], [1, 4])["min_class_share"] == 0.0
    assert digits.digit_metrics(probs_for([3, 3]), [1, -1], [])["min_class_share"] is None


def test_eval_points_include_zero_every_k_and_the_end():
    assert digits.eval_rounds(30, 5) == [0, 5, 10, 15, 20, 25, 30]
    assert digits.eval_rounds(7, 5) == [0, 5, 7]
    assert digits.eval_rounds(2, 1) == [0, 1, 2]


def test_seeds_are_a_count_or_a_list():
    assert digits.parse_seeds("3") == [0, 1, 2]
    assert digits.parse_seeds("4,7") == [4, 7]


def part(method, seed, prefs, completed, error=None):
    evals = [
        {
            "labels": 10 * i,
            "preferred": p,
            "min_class_share": 0.2,
            "confidence": 0.9,
            "finetune_seconds": 1.0 * i,
            "passes": 100 * i,
        }
        for i, p in enumerate(prefs)
    ]
    out = {"method": method, "seed": seed, "eval": evals, "rounds_completed": completed}
    return out | ({"error": error} if error else {})


def test_merge_averages_seeds_per_point_and_keeps_partial_runs():
    parts = [
        part("papa", 1, [0.2, 0.6, 0.8], 2),
        part("papa", 0, [0.4, 0.4], 1, error="time"),
        part("bestofn", 0, [0.3, 0.3, 0.3], 2),
    ]
    merged = digits.merge(parts, ["bestofn", "papa"])
    papa = merged["papa"]
    assert papa["labels"] == [0, 10, 20]
    assert papa["preferred_mean"] == pytest.approx([0.3, 0.5, 0.8])
    assert papa["preferred_sd"][0] == pytest.approx(0.1414, abs=1e-3)
    assert papa["preferred_sd"][2] == 0.0  # one seed got there
    assert papa["n_seeds"] == [2, 2, 1]
    assert papa["passes"] == [0, 100, 200]
    assert papa["rounds_completed"] == [1, 2]  # ordered by seed
    assert papa["errors"] == ["time"]
    assert [s["seed"] for s in papa["seeds"]] == [0, 1]


def test_table_has_a_row_per_method_and_the_final_column():
    merged = digits.merge([part("kto", 0, [0.1, 0.5, 0.9], 2)], ["kto"])
    table = digits.markdown_table(merged, columns=(0, 10))
    head, _, row = table.splitlines()
    assert "preferred @20" in head and "preferred @100" not in head
    # preferred @0/10/20, min class share, entropy (none in these parts), confidence
    assert row.startswith("| kto | 0.10 ± 0.00 | 0.50 ± 0.00 | 0.90 ± 0.00 | 0.20 | - | 0.90 |")


def test_every_method_has_finetune_settings():
    assert set(digits.FINETUNE) == set(digits.METHODS)
