"""The simulated user's rules on synthetic drawn strokes: thick is thick, slanted is slanted."""

import math

import pytest
import torch

from comfy_papa.digits import rules


def stroke(x0, y0, x1, y1, width, size=32) -> torch.Tensor:
    """A white segment of the given width on black: pixels within width/2 of the segment."""
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dx, dy = x1 - x0, y1 - y0
    t = (((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy)).clamp(0, 1)
    d = torch.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))
    return (d < width / 2).float()


@pytest.mark.parametrize("width", [2, 3, 5])
def test_stroke_width_of_a_vertical_bar_is_its_width(width):
    x = 16 + 0.5 * (width % 2)  # centred on pixel edges or centres: exactly `width` pixels wide
    assert rules.stroke_width(stroke(x, 6, x, 26, width)) == pytest.approx(width, abs=0.3)


def test_thick_line_is_thick_and_thin_line_is_thin():
    thick, thin = stroke(10, 6, 20, 26, 5), stroke(10, 6, 20, 26, 1.5)
    assert rules.rule_holds("thick strokes", thick)
    assert not rules.rule_holds("thick strokes", thin)
    assert rules.rule_holds("thin strokes", thin)
    assert not rules.rule_holds("thin strokes", thick)
    assert rules.stroke_width(thick) > 2 * rules.stroke_width(thin)


def test_slant_sign_and_size_of_a_leaning_stroke():
    right = stroke(12, 26, 20, 6, 3)  # bottom-left to top-right: leans right
    left = stroke(20, 26, 12, 6, 3)
    upright = stroke(16, 6, 16, 26, 3)
    expected = math.degrees(math.atan(8 / 20))
    assert rules.slant_degrees(right) == pytest.approx(expected, abs=3)
    assert rules.slant_degrees(left) == pytest.approx(-expected, abs=3)
    assert abs(rules.slant_degrees(upright)) < 1
    assert rules.rule_holds("slanted right", right) and not rules.rule_holds("slanted right", left)
    assert rules.rule_holds("slanted left", left) and not rules.rule_holds("slanted left", right)


def test_size_is_the_bounding_box_and_splits_large_from_small():
    big, small = stroke(16, 3, 16, 29, 3), stroke(16, 12, 16, 20, 3)
    # the segment's length plus its round caps (half the width at each end)
    assert rules.digit_size(big) == pytest.approx(26 + 3, abs=1)
    assert rules.digit_size(small) == pytest.approx(8 + 3, abs=1)
    assert rules.rule_holds("large", big) and not rules.rule_holds("large", small)
    assert rules.rule_holds("small", small) and not rules.rule_holds("small", big)


def test_explicit_threshold_overrides_the_default():
    bar = stroke(16.5, 6, 16.5, 26, 3)
    assert rules.rule_holds("thick strokes", bar, threshold=2.0)
    assert not rules.rule_holds("thick strokes", bar, threshold=4.0)


def test_empty_image_measures_zero():
    empty = torch.zeros(32, 32)
    assert rules.stroke_width(empty) == 0 and rules.digit_size(empty) == 0
    assert rules.slant_degrees(empty) == 0


def test_parse_digits_accepts_commas_and_spaces_and_refuses_words():
    assert rules.parse_digits("1,4, 7 9") == {1, 4, 7, 9}
    assert rules.parse_digits("") == set()
    with pytest.raises(ValueError, match="not a digit"):
        rules.parse_digits("1,12")


def test_label_combines_digits_and_rule():
    thick = stroke(10, 6, 20, 26, 5)
    thin = stroke(10, 6, 20, 26, 1.5)
    pref = {1, 7}
    assert rules.label(thin, 7, pref) == 1.0
    assert rules.label(thin, 3, pref) == -1.0
    assert rules.label(thin, 7, pref, "thick strokes", combine="and") == -1.0
    assert rules.label(thick, 7, pref, "thick strokes", combine="and") == 1.0
    assert rules.label(thin, 7, pref, "thick strokes", combine="or") == 1.0
    assert rules.label(thick, 3, pref, "thick strokes", combine="or") == 1.0
    assert rules.label(thin, 3, pref, "thick strokes", combine="or") == -1.0
    assert rules.label(thick, 3, set(), "thick strokes") == 1.0
    with pytest.raises(ValueError, match="nothing to judge"):
        rules.label(thick, 3, set(), "none")
