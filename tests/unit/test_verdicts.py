"""The verdict rule: an interval over worlds against a claim's margin."""

import math

import pytest

from ranking.verdicts import VERDICTS, claim_verdict, interval, verdict, worlds_agreeing


def test_interval_is_the_student_t_interval_of_the_mean():
    spread = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764
    half = 2.7764451 * math.sqrt(2.5) / math.sqrt(5)
    assert spread.mean == pytest.approx(3.0)
    assert spread.low == pytest.approx(3.0 - half, rel=1e-6)
    assert spread.high == pytest.approx(3.0 + half, rel=1e-6)
    assert spread.n_worlds == 5


def test_identical_worlds_give_a_point_interval():
    spread = interval([0.2, 0.2, 0.2])
    assert spread.low == pytest.approx(0.2)
    assert spread.high == pytest.approx(0.2)


@pytest.mark.parametrize("effects", [[1.0], [], [1.0, float("nan")], [[1.0, 2.0]]])
def test_interval_refuses_what_is_not_two_finite_effects(effects):
    with pytest.raises(ValueError, match="effects"):
        interval(effects)


@pytest.mark.parametrize(("low", "high", "threshold", "expected"), [
    (0.06, 0.20, 0.05, "holds"),        # past the margin
    (0.01, 0.20, 0.05, "mixed"),        # the claimed side, not past the margin
    (-0.01, 0.20, 0.05, "no effect"),   # contains zero
    (-0.20, -0.01, 0.05, "reverses"),   # the other side of zero
    (-0.01, 0.01, -0.015, "holds"),     # harmless change: above its negative margin
    (-0.03, 0.01, -0.015, "no effect"),
    (-0.03, -0.02, -0.015, "reverses"),  # worse than the allowed harm
    (-0.02, -0.01, -0.015, "mixed"),     # below zero, not surely past the allowed harm
    (0.05, 0.06, 0.05, "mixed"),         # touching the margin is not past it
])
def test_verdict_follows_the_rule(low, high, threshold, expected):
    assert verdict(low, high, threshold) == expected


def test_verdict_refuses_an_upside_down_interval():
    with pytest.raises(ValueError, match="low"):
        verdict(0.2, 0.1, 0.0)


@pytest.mark.parametrize(("tests", "expected"), [
    (["holds", "holds"], "holds"),
    (["no effect"], "no effect"),
    (["holds", "no effect"], "mixed"),
    (["holds", "reverses"], "mixed"),
    (["no effect", "reverses"], "reverses"),
    (["mixed", "reverses"], "reverses"),
])
def test_a_claim_verdict_combines_its_tests(tests, expected):
    assert claim_verdict(tests) == expected


@pytest.mark.parametrize("tests", [[], ["holds", "partly"]])
def test_claim_verdict_refuses_unknown_verdicts(tests):
    with pytest.raises(ValueError, match="test_verdicts"):
        claim_verdict(tests)


def test_worlds_agreeing_counts_effects_strictly_past_the_margin():
    assert worlds_agreeing([0.1, 0.05, 0.2, -1.0], 0.05) == 2
    assert set(VERDICTS) == {"holds", "no effect", "reverses", "mixed"}
