"""Calibration layers: planted miscalibrations recovered, per-context and per-group fixes, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from ranking.calibration import (
    ContextualPlatt,
    GroupCalibration,
    IsotonicCalibration,
    PlattScaling,
    correct_downsampling,
    downsample_negatives,
    fit_head_calibrators,
    fit_logistic,
    logit,
    sigmoid,
)
from ranking.metrics import ece, field_ece, logloss

SURFACE_OFFSETS = {"feed": 0.0, "search": 0.8, "video": -0.6}


def model_probs(rng, n):
    """A ranker's predictions: click-like, mean about 9%."""
    return rng.beta(2, 20, size=n)


def draw_labels(rng, truth):
    return (rng.random(len(truth)) < truth).astype(np.float64)


def planted(n, seed, slope=0.6, bias=-0.4):
    """Predictions, true rates sigmoid(slope * logit(p) + bias) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = model_probs(rng, n)
    truth = sigmoid(slope * logit(p) + bias)
    return p, truth, draw_labels(rng, truth)


def surface_shifted(n, seed):
    """A model right on average over all surfaces but off by a log-odds offset on two of them."""
    rng = np.random.default_rng(seed)
    p = model_probs(rng, n)
    surface = rng.choice(list(SURFACE_OFFSETS), size=n)
    truth = sigmoid(logit(p) + pd.Series(surface).map(SURFACE_OFFSETS).to_numpy())
    return p, truth, draw_labels(rng, truth), pd.DataFrame({"surface": surface})


# ---- logit / sigmoid ----

def test_logit_inverts_sigmoid_and_stays_finite_at_zero_and_one():
    z = np.array([-6.0, -1.0, 0.0, 2.5])
    np.testing.assert_allclose(logit(sigmoid(z)), z, atol=1e-9)
    ends = logit([0.0, 1.0])
    assert np.isfinite(ends).all() and ends[0] < -15 and ends[1] > 15


# ---- PlattScaling ----

def test_platt_recovers_a_planted_slope_and_bias():
    p, truth, labels = planted(200_000, seed=0, slope=0.6, bias=-0.4)
    platt = PlattScaling().fit(p, labels)
    assert platt.slope == pytest.approx(0.6, abs=0.03)
    assert platt.bias == pytest.approx(-0.4, abs=0.08)
    calibrated = platt.transform(p)
    assert np.abs(calibrated - truth).max() < 0.01
    assert np.abs(p - truth).max() > 0.05                    # the planted error was large


def test_platt_leaves_a_calibrated_model_about_unchanged():
    p, truth, labels = planted(200_000, seed=1, slope=1.0, bias=0.0)
    platt = PlattScaling().fit(p, labels)
    assert platt.slope == pytest.approx(1.0, abs=0.03)
    assert platt.bias == pytest.approx(0.0, abs=0.08)
    assert np.abs(platt.transform(p) - p).max() < 0.01


def test_platt_accepts_lists_and_tensors_and_scores_new_rows():
    p, _, labels = planted(20_000, seed=2)
    from_numpy = PlattScaling().fit(p, labels)
    from_torch = PlattScaling().fit(torch.tensor(p), torch.tensor(labels))
    assert from_torch.slope == pytest.approx(from_numpy.slope, rel=1e-9)
    np.testing.assert_allclose(from_numpy.transform([0.0, 0.05, 1.0]),
                               sigmoid(from_numpy.slope * logit([0.0, 0.05, 1.0]) + from_numpy.bias))


def test_transform_before_fit_raises():
    for calibrator, args in ((PlattScaling(), ([0.1],)),
                             (IsotonicCalibration(), ([0.1],)),
                             (ContextualPlatt(["surface"]), ([0.1], pd.DataFrame({"surface": ["feed"]}))),
                             (GroupCalibration(), ([0.1], ["a"]))):
        with pytest.raises(RuntimeError, match="not fitted"):
            calibrator.transform(*args)


@pytest.mark.parametrize("probs, labels, match", [
    ([0.1, 0.2, 0.3], [0, 0, 0], "one class"),
    ([0.1, 0.2, 0.3], [1, 1, 1], "one class"),
    ([0.1, np.nan, 0.3], [0, 1, 0], "NaN"),
    ([0.1, 1.2, 0.3], [0, 1, 0], r"must lie in \[0, 1\]"),
    ([-0.1, 0.2, 0.3], [0, 1, 0], r"must lie in \[0, 1\]"),
    ([0.1, 0.2], [0, 1, 0], "same length"),
    ([0.1, 0.2, 0.3], [0, 2, 0], "0 or 1"),
])
@pytest.mark.parametrize("calibrator", [PlattScaling, IsotonicCalibration])
def test_a_bad_calibration_set_raises(calibrator, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        calibrator().fit(probs, labels)


def test_transform_rejects_probabilities_outside_zero_one():
    platt = PlattScaling().fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        platt.transform([0.5, 1.5])


# ---- ContextualPlatt ----

@pytest.fixture(scope="module")
def shifted():
    return surface_shifted(60_000, seed=3), surface_shifted(60_000, seed=4)


def test_contextual_platt_fixes_a_per_surface_offset_that_global_platt_cannot(shifted):
    (p, _, labels, context), (p_test, truth_test, _, context_test) = shifted
    surface = context_test["surface"]
    global_fix = PlattScaling().fit(p, labels).transform(p_test)
    contextual = ContextualPlatt(["surface"]).fit(p, labels, context).transform(p_test, context_test)
    before = field_ece(truth_test, p_test, surface)
    after_global = field_ece(truth_test, global_fix, surface)
    after_contextual = field_ece(truth_test, contextual, surface)
    assert after_global > 0.5 * before                       # one slope and bias cannot fix it
    assert after_contextual < 0.15 * after_global
    assert after_contextual < 0.002
    for name, offset in SURFACE_OFFSETS.items():             # each surface's own offset, recovered
        on = (surface == name).to_numpy()
        shift = (logit(contextual[on]) - logit(p_test[on])).mean()
        assert shift == pytest.approx(offset, abs=0.1)


def test_contextual_platt_gives_an_unseen_value_no_correction_of_its_own(shifted):
    (p, _, labels, context), _ = shifted
    calibrator = ContextualPlatt(["surface"]).fit(p, labels, context)
    probs = np.array([0.01, 0.05, 0.2])
    unseen = calibrator.transform(probs, pd.DataFrame({"surface": ["shop"] * 3}))
    assert np.isfinite(unseen).all() and ((unseen > 0) & (unseen < 1)).all()
    # only the shared slope and bias: no surface column switched on
    np.testing.assert_allclose(unseen, sigmoid(calibrator.weights[0] * logit(probs) + calibrator.bias))
    for name in SURFACE_OFFSETS:
        seen = calibrator.transform(probs, pd.DataFrame({"surface": [name] * 3}))
        assert np.abs(seen - unseen).max() > 1e-3


def test_contextual_platt_learns_a_per_group_slope_with_slopes():
    rng = np.random.default_rng(5)
    n = 60_000
    p = model_probs(rng, n)
    group = rng.choice(["a", "b"], size=n)
    slope = np.where(group == "a", 1.0, 1.8)
    truth = sigmoid(slope * logit(p) + np.where(group == "a", 0.0, 1.5))
    labels = draw_labels(rng, truth)
    context = pd.DataFrame({"group": group})

    def fitted_slope(calibrator, value):
        """d logit(output) / d logit(input) for one group: the map is linear in the logit."""
        probs = np.array([0.03, 0.15])
        out = calibrator.transform(probs, pd.DataFrame({"group": [value] * 2}))
        return float(np.diff(logit(out))[0] / np.diff(logit(probs))[0])

    with_slopes = ContextualPlatt(["group"], slopes=True).fit(p, labels, context)
    assert fitted_slope(with_slopes, "a") == pytest.approx(1.0, abs=0.12)
    assert fitted_slope(with_slopes, "b") == pytest.approx(1.8, abs=0.12)
    offsets_only = ContextualPlatt(["group"]).fit(p, labels, context)
    assert fitted_slope(offsets_only, "a") == pytest.approx(fitted_slope(offsets_only, "b"), abs=1e-9)


def test_contextual_platt_with_two_fields():
    p, _, labels, context = surface_shifted(40_000, seed=6)
    p_test, truth_test, _, context_test = surface_shifted(40_000, seed=7)
    rng = np.random.default_rng(8)
    context["noise"] = rng.integers(0, 2, len(p))
    context_test["noise"] = rng.integers(0, 2, len(p_test))
    calibrated = ContextualPlatt(["surface", "noise"]).fit(p, labels, context).transform(p_test, context_test)
    assert field_ece(truth_test, calibrated, context_test["surface"]) < 0.25 * field_ece(
        truth_test, p_test, context_test["surface"])


@pytest.mark.parametrize("fields", ["surface", "", [], ()])
def test_contextual_platt_needs_a_list_of_fields(fields):
    with pytest.raises(ValueError, match="non-empty list"):
        ContextualPlatt(fields)


def test_contextual_platt_rejects_bad_context(shifted):
    (p, _, labels, context), _ = shifted
    calibrator = ContextualPlatt(["surface"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['surface'\]"):
        calibrator.fit(p, labels, context.rename(columns={"surface": "page"}))
    with pytest.raises(ValueError, match="rows"):
        calibrator.fit(p, labels, context.iloc[:-1])
    with pytest.raises(TypeError, match="DataFrame"):
        calibrator.fit(p, labels, context["surface"])
    calibrator.fit(p, labels, context)
    with pytest.raises(ValueError, match="3 rows for 2 probabilities"):
        calibrator.transform([0.1, 0.2], pd.DataFrame({"surface": ["feed"] * 3}))
    with pytest.raises(TypeError, match="DataFrame"):
        calibrator.transform([0.1], {"surface": ["feed"]})


# ---- IsotonicCalibration ----

def test_isotonic_is_monotone_inside_zero_one_and_lowers_ece():
    p, _, labels = planted(50_000, seed=9, slope=0.5, bias=-1.0)
    p_test, _, labels_test = planted(50_000, seed=10, slope=0.5, bias=-1.0)
    isotonic = IsotonicCalibration().fit(p, labels)
    grid = np.linspace(0.0, 1.0, 2001)
    out = isotonic.transform(grid)
    assert (np.diff(out) >= 0).all()
    assert ((out > 0) & (out < 1)).all()
    assert out[-1] > out[0]                                  # not a constant
    before, after = ece(labels_test, p_test), ece(labels_test, isotonic.transform(p_test))
    assert after < 0.3 * before


def test_isotonic_overfits_a_tiny_calibration_set_where_platt_does_not():
    """50 calibration rows: isotonic's steps learn the noise; two Platt numbers do not."""
    p_test, _, labels_test = planted(50_000, seed=100)
    isotonic_losses, platt_losses = [], []
    for seed in range(5):
        p, _, labels = planted(50, seed=seed)
        isotonic_losses.append(logloss(labels_test, IsotonicCalibration().fit(p, labels).transform(p_test)))
        platt_losses.append(logloss(labels_test, PlattScaling().fit(p, labels).transform(p_test)))
    assert all(iso > platt for iso, platt in zip(isotonic_losses, platt_losses))
    # with plenty of rows the two agree
    p, _, labels = planted(50_000, seed=11)
    many_isotonic = logloss(labels_test, IsotonicCalibration().fit(p, labels).transform(p_test))
    many_platt = logloss(labels_test, PlattScaling().fit(p, labels).transform(p_test))
    assert many_isotonic == pytest.approx(many_platt, abs=0.003)
    assert np.mean(isotonic_losses) > many_isotonic + 0.05


# ---- GroupCalibration ----

def group_data():
    """'big': 10,000 rows predicted 10%, 1,500 clicks (ratio 1.5); 'small': 10 rows predicted 10%, 1 click."""
    probs = np.full(10_010, 0.1)
    labels = np.zeros(10_010)
    labels[:1500] = 1
    labels[10_000] = 1
    groups = np.array(["big"] * 10_000 + ["small"] * 10)
    return probs, labels, groups


def test_group_calibration_shrinks_small_groups_toward_the_global_factor():
    probs, labels, groups = group_data()
    calibrator = GroupCalibration(prior_strength=20.0).fit(probs, labels, groups)
    g = 1501 / 1001
    assert calibrator.global_factor == pytest.approx(g)
    assert calibrator.factors["big"] == pytest.approx((1500 + 20 * g) / (1000 + 20))
    assert calibrator.factors["small"] == pytest.approx((1 + 20 * g) / (1 + 20))
    assert calibrator.factors["big"] == pytest.approx(1.5, abs=0.01)        # its own ratio
    assert abs(calibrator.factors["small"] - g) < 0.05                    # not its own ratio, 1.0
    out = calibrator.transform([0.1, 0.1, 0.1, 0.02], ["big", "small", "unseen", "big"])
    np.testing.assert_allclose(out, [0.1 * calibrator.factors["big"], 0.1 * calibrator.factors["small"],
                                     0.1 * g, 0.02 * calibrator.factors["big"]])


def test_group_calibration_prior_strength_moves_the_small_group():
    probs, labels, groups = group_data()
    weak = GroupCalibration(prior_strength=0.01).fit(probs, labels, groups)
    strong = GroupCalibration(prior_strength=1e6).fit(probs, labels, groups)
    assert weak.factors["small"] == pytest.approx(1.0, abs=0.02)        # 1 click / 1 predicted
    assert strong.factors["small"] == pytest.approx(strong.global_factor, rel=1e-4)
    assert strong.factors["big"] == pytest.approx(strong.global_factor, rel=1e-2)


def test_group_calibration_never_returns_more_than_one():
    probs, labels, groups = group_data()
    calibrator = GroupCalibration().fit(probs, labels, groups)
    out = calibrator.transform([0.9, 0.99, 1.0, 0.5], ["big"] * 4)
    assert (out <= 1.0).all()
    np.testing.assert_allclose(out[:3], 1.0)
    assert out[3] == pytest.approx(0.5 * calibrator.factors["big"])


@pytest.mark.parametrize("strength", [0, -1.0, float("nan")])
def test_group_calibration_rejects_a_bad_prior_strength(strength):
    with pytest.raises(ValueError, match="prior_strength"):
        GroupCalibration(prior_strength=strength)


def test_group_calibration_rejects_groups_of_the_wrong_length():
    probs, labels, groups = group_data()
    with pytest.raises(ValueError, match="one entry per row"):
        GroupCalibration().fit(probs, labels, groups[:-1])
    calibrator = GroupCalibration().fit(probs, labels, groups)
    with pytest.raises(ValueError, match="one entry per row"):
        calibrator.transform([0.1, 0.2], ["big"])


# ---- fit_head_calibrators ----

def test_head_calibrators_fit_each_head_on_its_own_rows():
    rng = np.random.default_rng(12)
    n = 100_000
    click_p = model_probs(rng, n)
    click = draw_labels(rng, sigmoid(0.8 * logit(click_p) - 0.2))
    conversion_p = rng.beta(3, 10, size=n)
    conversion = click * draw_labels(rng, sigmoid(1.3 * logit(conversion_p) + 0.4))   # only on clicks
    clicked = click == 1
    probs = {"click": click_p, "conversion": conversion_p}
    labels = {"click": click, "conversion": conversion}
    heads = fit_head_calibrators(probs, labels, rows={"conversion": clicked})
    assert set(heads) == {"click", "conversion"}
    assert heads["click"].slope == pytest.approx(0.8, abs=0.05)
    assert heads["conversion"].slope == pytest.approx(1.3, abs=0.15)
    assert heads["conversion"].bias == pytest.approx(0.4, abs=0.15)
    alone = PlattScaling().fit(conversion_p[clicked], conversion[clicked])
    assert heads["conversion"].slope == pytest.approx(alone.slope, rel=1e-9)
    # without the mask the unclicked rows (all labelled 0) drag the head far down
    unmasked = fit_head_calibrators(probs, labels)["conversion"]
    assert unmasked.bias < heads["conversion"].bias - 1.0


def test_head_calibrators_need_labels_for_every_head():
    with pytest.raises(ValueError, match="no labels for head 'conversion'"):
        fit_head_calibrators({"click": [0.1, 0.2], "conversion": [0.1, 0.2]}, {"click": [0, 1]})


# ---- negative downsampling ----

def test_downsample_negatives_keeps_every_positive_and_a_share_of_negatives():
    rng = np.random.default_rng(13)
    labels = (rng.random(200_000) < 0.05).astype(float)
    kept = downsample_negatives(labels, keep_rate=0.1, seed=1)
    assert (np.diff(kept) > 0).all()                         # sorted, no repeats
    positives = np.flatnonzero(labels == 1)
    assert np.isin(positives, kept).all()
    kept_negatives = (labels[kept] == 0).sum()
    assert kept_negatives / (labels == 0).sum() == pytest.approx(0.1, abs=0.005)
    np.testing.assert_array_equal(kept, downsample_negatives(labels, 0.1, seed=1))
    assert not np.array_equal(kept, downsample_negatives(labels, 0.1, seed=2))
    np.testing.assert_array_equal(downsample_negatives(labels, 1.0), np.arange(len(labels)))


def test_correct_downsampling_inverts_the_downsampled_rate():
    w = 0.1
    true_rate = np.array([0.0, 0.001, 0.02, 0.3, 0.9, 1.0])
    downsampled_rate = true_rate / (true_rate + (1 - true_rate) * w)
    np.testing.assert_allclose(correct_downsampling(downsampled_rate, w), true_rate, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(correct_downsampling(true_rate, 1.0), true_rate)


def test_correct_downsampling_maps_a_model_of_the_downsampled_log_back_to_the_true_rate():
    """Per group, the rate seen after downsampling, corrected, is the group's true rate."""
    rng = np.random.default_rng(14)
    rates = np.array([0.01, 0.04, 0.15])
    group = rng.integers(0, 3, 600_000)
    labels = draw_labels(rng, rates[group])
    kept = downsample_negatives(labels, keep_rate=0.05, seed=3)
    seen = np.array([labels[kept][group[kept] == g].mean() for g in range(3)])
    assert (seen > 3 * rates).all()                          # the downsampled log over-states the rate
    np.testing.assert_allclose(correct_downsampling(seen, 0.05), rates, rtol=0.08)


@pytest.mark.parametrize("keep_rate", [0.0, -0.1, 1.5, float("nan")])
def test_downsampling_rejects_a_bad_keep_rate(keep_rate):
    with pytest.raises(ValueError, match="keep_rate"):
        downsample_negatives([0, 1, 0], keep_rate)
    with pytest.raises(ValueError, match="keep_rate"):
        correct_downsampling([0.1, 0.2], keep_rate)


# ---- fit_logistic ----

@pytest.mark.parametrize("l2", [1e-6, 2.0])
def test_fit_logistic_matches_sklearn(l2):
    """Summed log loss + l2/2 |w|^2 with a free bias is sklearn's objective with C = 1 / l2."""
    rng = np.random.default_rng(15)
    features = rng.normal(size=(5_000, 4))
    labels = draw_labels(rng, sigmoid(features @ np.array([1.0, -0.5, 0.25, 0.0]) - 1.0))
    weights, bias = fit_logistic(features, labels, l2=l2)
    reference = LogisticRegression(C=1 / l2, tol=1e-12, max_iter=10_000).fit(features, labels)
    np.testing.assert_allclose(weights, reference.coef_[0], atol=1e-5)
    assert bias == pytest.approx(reference.intercept_[0], abs=1e-5)
    assert abs(weights[0] - 1.0) < 0.15 and abs(bias + 1.0) < 0.15        # and near the planted model


def test_head_calibrators_refuse_a_mask_that_is_not_boolean():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.01, 0.3, 1_000)
    labels = (rng.random(1_000) < probs).astype(float)
    with pytest.raises(ValueError, match="boolean mask"):
        fit_head_calibrators({"click": probs}, {"click": labels},
                             rows={"click": (labels > 0).astype(int)})
