"""Metrics: cross-checks against scikit-learn and direct formulas, known values, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from ranking.metrics import (
    auc,
    calibration_ratio,
    calibration_table,
    ece,
    expected_logloss,
    field_calibration,
    field_ece,
    gap_closed,
    logloss,
    normalized_entropy,
    oracle_gap_closed,
    oracle_report,
    plot_reliability,
)

N_ROWS = 200_000


@pytest.fixture(scope="module")
def calibrated():
    """Click-like data drawn from known probabilities (mean about 6%, all below 0.5)."""
    rng = np.random.default_rng(0)
    probs = rng.beta(2, 30, size=N_ROWS)
    labels = (rng.random(N_ROWS) < probs).astype(np.int64)
    return labels, probs


def direct_ece(labels, probs, edges):
    """ECE by looping over bins (low, high], the first bin also taking its low edge."""
    total = 0.0
    for b in range(len(edges) - 1):
        if b == 0:
            in_bin = probs <= edges[1]
        else:
            in_bin = (probs > edges[b]) & (probs <= edges[b + 1])
        if in_bin.any():
            gap = abs(labels[in_bin].mean() - probs[in_bin].mean())
            total += in_bin.mean() * gap
    return total


# ---- auc ----

@pytest.mark.parametrize("decimals", [1, 2, 4, None])
def test_auc_matches_sklearn_with_ties(decimals):
    rng = np.random.default_rng(1)
    probs = rng.random(20_000)
    labels = (rng.random(20_000) < probs).astype(int)
    if decimals is not None:
        probs = np.round(probs, decimals)
    assert auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-12)


def test_auc_heavy_ties_matches_sklearn():
    rng = np.random.default_rng(2)
    probs = rng.choice([0.1, 0.2, 0.7], size=50_000, p=[0.6, 0.3, 0.1])
    labels = (rng.random(50_000) < probs).astype(int)
    expected = roc_auc_score(labels, probs)
    assert auc(labels, probs) == pytest.approx(expected, abs=1e-12)
    assert 0.6 < expected < 0.9


def test_auc_one_million_rows_matches_sklearn():
    rng = np.random.default_rng(3)
    probs = np.round(rng.beta(1, 30, size=1_000_000), 3)
    labels = (rng.random(1_000_000) < probs).astype(int)
    assert auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs), abs=1e-10)


def test_auc_known_values():
    labels = [0, 0, 1, 1]
    assert auc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc(labels, [0.3, 0.3, 0.3, 0.3]) == 0.5
    # Pairs (pos, neg): (0.2 vs 0.2) tie = 0.5, (0.2 vs 0.5) loss, (0.6 vs both) two wins.
    assert auc([0, 1, 1, 0], [0.2, 0.2, 0.6, 0.5]) == 0.625


# ---- logloss and normalized entropy ----

def test_logloss_matches_sklearn(calibrated):
    labels, probs = calibrated
    assert logloss(labels, probs) == pytest.approx(log_loss(labels, probs), rel=1e-12)


def test_logloss_clips_confident_mistakes():
    value = logloss([1, 0], [0.0, 0.0], eps=1e-7)
    expected = (-np.log(1e-7) - np.log(1 - 1e-7)) / 2
    assert value == pytest.approx(expected, rel=1e-12)


def test_normalized_entropy_matches_formula(calibrated):
    labels, probs = calibrated
    rate = labels.mean()
    base_entropy = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    expected = log_loss(labels, probs) / base_entropy
    assert normalized_entropy(labels, probs) == pytest.approx(expected, rel=1e-12)
    assert normalized_entropy(labels, probs) < 0.95


def test_base_rate_predictor_has_normalized_entropy_one(calibrated):
    labels, _ = calibrated
    constant = np.full(len(labels), labels.mean())
    assert normalized_entropy(labels, constant) == pytest.approx(1.0, abs=1e-12)


# ---- calibration ----

def test_ece_uniform_matches_direct_formula(calibrated):
    labels, probs = calibrated
    rng = np.random.default_rng(4)
    noisy = np.clip(probs * rng.uniform(0.5, 1.5, size=len(probs)), 0, 1)
    edges = np.linspace(0, 1, 11)
    expected = direct_ece(labels, noisy, edges)
    assert ece(labels, noisy, n_bins=10, strategy="uniform") == pytest.approx(expected, rel=1e-9)


def test_ece_quantile_matches_direct_formula_with_ties():
    rng = np.random.default_rng(5)
    probs = np.round(rng.beta(2, 20, size=30_000), 2)
    # Under-predicts low probabilities and over-predicts high ones, so gaps change sign.
    true_probs = np.where(probs < 0.08, 2 * probs, 0.5 * probs)
    labels = (rng.random(30_000) < true_probs).astype(int)
    # Five bins are coarse enough that whole tie groups sit on the bin edges.
    edges = np.quantile(probs, np.linspace(0, 1, 6))
    expected = direct_ece(labels, probs, edges)
    assert ece(labels, probs, n_bins=5, strategy="quantile") == pytest.approx(expected, rel=1e-9)
    assert expected > 0.005


def test_ece_bins_are_closed_on_the_right():
    # With two uniform bins, 0.5 falls in (0, 0.5]: gaps 0.5 and 0.9, each bin half the rows.
    assert ece([1, 1, 0, 0], [0.5, 0.5, 0.9, 0.9], n_bins=2, strategy="uniform") == pytest.approx(0.7)


def test_calibrated_probabilities_have_small_ece_and_ratio_one(calibrated):
    labels, probs = calibrated
    assert ece(labels, probs) < 0.005
    assert ece(labels, probs, strategy="uniform") < 0.005
    assert calibration_ratio(labels, probs) == pytest.approx(1.0, abs=0.02)


def test_doubled_probabilities_have_ratio_two(calibrated):
    labels, probs = calibrated
    doubled = 2 * probs
    assert calibration_ratio(labels, doubled) == pytest.approx(2.0, abs=0.04)
    assert calibration_ratio(labels, doubled) == pytest.approx(
        2 * calibration_ratio(labels, probs), rel=1e-12)
    assert ece(labels, doubled) > 0.05


def test_calibration_table(calibrated):
    labels, probs = calibrated
    table = calibration_table(labels, probs, n_bins=10)
    assert list(table.columns) == ["mean_prediction", "observed_rate", "count", "ratio"]
    assert len(table) == 10
    assert table["count"].sum() == N_ROWS
    assert table["count"].min() >= N_ROWS // 10 - 1
    assert table["mean_prediction"].is_monotonic_increasing
    np.testing.assert_allclose(table["observed_rate"], table["mean_prediction"], atol=0.01)
    np.testing.assert_allclose(table["ratio"], table["mean_prediction"] / table["observed_rate"])
    low_bin = probs <= np.quantile(probs, 0.1)
    assert table["observed_rate"].iloc[0] == pytest.approx(labels[low_bin].mean())


def test_calibration_table_ratio_is_nan_without_clicks():
    table = calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_bins=2)
    assert table["count"].tolist() == [2, 2]
    assert np.isnan(table["ratio"].iloc[0])
    assert table["ratio"].iloc[1] == pytest.approx(0.85)


# ---- gap closed and the oracle report ----

def test_gap_closed():
    assert gap_closed(0.30, base_logloss=0.30, oracle_logloss=0.20) == 0.0
    assert gap_closed(0.20, base_logloss=0.30, oracle_logloss=0.20) == 1.0
    assert gap_closed(0.25, base_logloss=0.30, oracle_logloss=0.20) == pytest.approx(0.5)
    assert gap_closed(0.35, base_logloss=0.30, oracle_logloss=0.20) == pytest.approx(-0.5)


def test_oracle_report(calibrated):
    labels, probs = calibrated
    rng = np.random.default_rng(6)
    noisy = np.clip(probs * rng.lognormal(0, 0.5, size=len(probs)), 0, 1)
    report = oracle_report(labels, {"noisy": noisy}, oracle_probs=probs, base_rate=0.05)

    assert report.index.tolist() == ["base rate", "noisy", "oracle"]
    assert report.columns.tolist() == [
        "logloss", "normalized_entropy", "auc", "ece", "calibration_ratio", "gap_closed"]
    base, model, oracle = report.loc["base rate"], report.loc["noisy"], report.loc["oracle"]
    assert np.isnan(base["auc"])
    assert base["gap_closed"] == 0.0
    assert oracle["gap_closed"] == 1.0
    assert 0 < model["gap_closed"] < 1
    assert oracle["logloss"] < model["logloss"] < base["logloss"]
    assert oracle["auc"] > model["auc"] > 0.5
    assert base["normalized_entropy"] > 1  # 5% is not this sample's base rate
    assert base["calibration_ratio"] == pytest.approx(0.05 / labels.mean())
    assert model["logloss"] == pytest.approx(logloss(labels, noisy))
    assert oracle["ece"] == pytest.approx(ece(labels, probs))


def test_oracle_report_default_base_rate_is_label_mean(calibrated):
    labels, probs = calibrated
    report = oracle_report(labels, {}, oracle_probs=probs)
    assert report.index.tolist() == ["base rate", "oracle"]
    assert report.loc["base rate", "normalized_entropy"] == pytest.approx(1.0, abs=1e-12)
    assert report.loc["base rate", "calibration_ratio"] == pytest.approx(1.0, abs=1e-12)


# ---- input types ----

def test_accepts_torch_tensors_pandas_series_and_lists(calibrated):
    labels, probs = calibrated
    expected_auc = auc(labels, probs)
    expected_logloss = logloss(labels, probs)

    label_tensor = torch.tensor(labels)
    prob_tensor = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    assert auc(label_tensor, prob_tensor) == expected_auc
    assert logloss(label_tensor.bool(), prob_tensor) == pytest.approx(expected_logloss, rel=1e-12)
    assert auc(label_tensor, prob_tensor.float()) == pytest.approx(expected_auc, abs=1e-4)

    label_series = pd.Series(labels, index=np.arange(N_ROWS) * 3)
    prob_series = pd.Series(probs, index=np.arange(N_ROWS) * 3)
    assert auc(label_series, prob_series) == expected_auc
    assert ece(label_series, prob_series) == ece(labels, probs)

    assert auc(labels[:100].tolist(), probs[:100].tolist()) == auc(labels[:100], probs[:100])


# ---- bad input ----

METRICS = [auc, logloss, normalized_entropy, ece, calibration_ratio, calibration_table]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(("labels", "probs", "message"), [
    ([0, 1, 1], [0.1, 0.9], "same length"),
    ([0, 1], [0.1, np.nan], "probs contains NaN"),
    ([0, np.nan], [0.1, 0.9], "labels contains NaN"),
    ([0, 2], [0.1, 0.9], "labels must be 0 or 1"),
    ([0, 1], [0.1, 1.5], r"probs must lie in \[0, 1\]"),
    ([0, 1], [-0.1, 0.9], r"probs must lie in \[0, 1\]"),
    ([], [], "labels must not be empty"),
    ([[0, 1]], [[0.1, 0.9]], "labels must be 1-d"),
])
def test_bad_input_raises(metric, labels, probs, message):
    with pytest.raises(ValueError, match=message):
        metric(labels, probs)


def test_single_class_raises():
    with pytest.raises(ValueError, match="both classes"):
        auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="both classes"):
        normalized_entropy([0, 0], [0.2, 0.5])
    with pytest.raises(ValueError, match="at least one positive"):
        calibration_ratio([0, 0], [0.2, 0.5])


@pytest.mark.parametrize("n_bins", [0, -3, 2.5, True])
def test_bad_n_bins_raises(n_bins):
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        ece([0, 1], [0.2, 0.8], n_bins=n_bins)
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        calibration_table([0, 1], [0.2, 0.8], n_bins=n_bins)


def test_other_bad_arguments_raise():
    with pytest.raises(ValueError, match="strategy must be one of"):
        ece([0, 1], [0.2, 0.8], strategy="equal")
    with pytest.raises(ValueError, match="eps must be in"):
        logloss([0, 1], [0.2, 0.8], eps=0.0)
    with pytest.raises(ValueError, match="oracle_logloss must be below base_logloss"):
        gap_closed(0.2, base_logloss=0.3, oracle_logloss=0.3)
    with pytest.raises(ValueError, match="base_rate must be in"):
        oracle_report([0, 1], {}, oracle_probs=[0.2, 0.8], base_rate=1.0)
    with pytest.raises(ValueError, match="reserved name 'oracle'"):
        oracle_report([0, 1], {"oracle": [0.3, 0.7]}, oracle_probs=[0.2, 0.8])


def test_expected_logloss_is_the_mean_logloss_over_many_label_draws():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.3, 200)
    q = np.clip(p + rng.normal(0, 0.05, 200), 0.01, 0.99)
    draws = rng.random((400, 200)) < p                      # 400 label vectors drawn from p
    monte_carlo = np.mean([logloss(labels.astype(float), q) for labels in draws])
    assert expected_logloss(p, q) == pytest.approx(monte_carlo, rel=0.02)
    exact = -(p * np.log(q) + (1 - p) * np.log(1 - q)).mean()
    assert expected_logloss(p, q) == pytest.approx(exact, rel=1e-12)


def test_expected_logloss_is_smallest_at_the_truth():
    p = np.array([0.02, 0.1, 0.5, 0.9])
    truth = expected_logloss(p, p)
    assert truth == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)).mean())
    for wrong in (p * 0.8, np.full(4, p.mean()), np.clip(p * 1.3, 0, 0.99)):
        assert expected_logloss(p, wrong) > truth


@pytest.mark.parametrize("true_probs, probs, match", [
    ([0.1, 0.2], [0.1], "same length"),
    ([0.1, 1.2], [0.1, 0.2], "true_probs must lie"),
    ([0.1, 0.2], [-0.1, 0.2], "probs must lie"),
    ([], [], "empty"),
])
def test_expected_logloss_rejects_bad_input(true_probs, probs, match):
    with pytest.raises(ValueError, match=match):
        expected_logloss(true_probs, probs)


def test_oracle_gap_closed_is_zero_at_the_base_rate_one_at_the_oracle():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.001, 0.05, 1000)
    rate = float(truth.mean())
    assert oracle_gap_closed(truth, np.full(1000, rate), rate) == pytest.approx(0.0, abs=1e-12)
    assert oracle_gap_closed(truth, truth, rate) == pytest.approx(1.0)
    halfway = np.sqrt(truth * rate)                          # a model between the two
    assert 0 < oracle_gap_closed(truth, halfway, rate) < 1
    assert oracle_gap_closed(truth, np.full(1000, 0.5), rate) < 0      # worse than the base rate
    base = expected_logloss(truth, np.full(1000, rate))
    expected = gap_closed(expected_logloss(truth, halfway), base, expected_logloss(truth, truth))
    assert oracle_gap_closed(truth, halfway, rate) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("base_rate", [0.0, 1.0, float("nan"), -0.1])
def test_oracle_gap_closed_needs_a_base_rate_inside_zero_one(base_rate):
    with pytest.raises(ValueError, match="base_rate"):
        oracle_gap_closed([0.1, 0.2], [0.1, 0.2], base_rate)


# ---- field_ece ----

def test_field_ece_is_zero_when_every_field_value_sums_right():
    targets = np.array([1, 0, 1, 0, 0, 0])
    probs = np.array([0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    field = np.array(["feed", "feed", "search", "search", "search", "search"])
    assert field_ece(targets, probs, field) == pytest.approx(0.0, abs=1e-15)
    assert field_ece(targets, probs, np.arange(6)) == pytest.approx(2.5 / 6)   # row by row it is off


def test_field_ece_on_a_hand_example():
    targets = [1, 0, 0, 1, 0]
    probs = [0.5, 0.2, 0.1, 0.4, 0.3]
    field = ["a", "a", "b", "b", "b"]
    # a: (1 - 0.5) + (0 - 0.2) = 0.3; b: -0.1 + 0.6 - 0.3 = 0.2; (|0.3| + |0.2|) / 5
    assert field_ece(targets, probs, field) == pytest.approx(0.1)
    # misses of opposite signs add up instead of cancelling
    assert field_ece([1, 0], [0.0, 1.0], ["x", "y"]) == pytest.approx(1.0)
    assert field_ece([1, 0], [0.0, 1.0], ["x", "x"]) == pytest.approx(0.0)
    assert field_ece(pd.Series(targets), torch.tensor(probs), np.array([3, 3, 7, 7, 7])) == pytest.approx(0.1)


def test_field_ece_accepts_true_probabilities_as_targets():
    truth = np.array([0.02, 0.04, 0.10, 0.30])
    field = np.array([0, 0, 1, 1])
    assert field_ece(truth, truth, field) == 0.0
    halved = truth / 2
    expected = (abs(0.06 - 0.03) + abs(0.40 - 0.20)) / 4
    assert field_ece(truth, halved, field) == pytest.approx(expected)


@pytest.mark.parametrize("targets, probs, field, match", [
    ([1, 0], [0.1, 0.2], ["a"], "same length"),
    ([1, 0], [0.1], ["a", "b"], "same length"),
    ([1.5, 0], [0.1, 0.2], ["a", "b"], r"targets must lie in \[0, 1\]"),
    ([1, 0], [0.1, -0.2], ["a", "b"], r"probs must lie in \[0, 1\]"),
    ([1, 0], [0.1, np.nan], ["a", "b"], "NaN"),
])
def test_field_ece_rejects_bad_input(targets, probs, field, match):
    with pytest.raises(ValueError, match=match):
        field_ece(targets, probs, field)


# ---- field_calibration ----

def test_field_calibration_on_a_hand_example():
    labels = [1, 0, 0, 1, 0, 0]
    probs = [0.5, 0.3, 0.1, 0.2, 0.3, 0.4]
    field = ["x", "x", "y", "y", "y", "y"]
    table = field_calibration(labels, probs, field)
    assert list(table.columns) == ["rows", "mean_prediction", "observed_rate", "ratio"]
    assert table.index.name == "value"
    assert list(table.index) == ["x", "y"]
    assert list(table["rows"]) == [2, 4]
    np.testing.assert_allclose(table["mean_prediction"], [0.4, 0.25])
    np.testing.assert_allclose(table["observed_rate"], [0.5, 0.25])
    np.testing.assert_allclose(table["ratio"], [0.8, 1.0])     # prediction / observed, like calibration_ratio
    assert table.loc["x", "ratio"] == pytest.approx(
        calibration_ratio(labels[:2], probs[:2]))


def test_field_calibration_with_true_probabilities():
    labels = [1, 0, 0, 1, 0, 0]
    probs = [0.5, 0.3, 0.1, 0.2, 0.3, 0.4]
    truth = [0.6, 0.2, 0.2, 0.2, 0.2, 0.2]
    table = field_calibration(labels, probs, ["x", "x", "y", "y", "y", "y"], true_probs=truth)
    assert list(table.columns) == ["rows", "mean_prediction", "observed_rate", "true_rate",
                                   "ratio", "ratio_to_truth"]
    np.testing.assert_allclose(table["true_rate"], [0.4, 0.2])
    np.testing.assert_allclose(table["ratio_to_truth"], [1.0, 1.25])
    np.testing.assert_allclose(table["ratio"], [0.8, 1.0])


def test_field_calibration_rejects_a_field_of_the_wrong_length():
    with pytest.raises(ValueError, match="field has 1 entries for 2 rows"):
        field_calibration([0, 1], [0.1, 0.2], ["a"])
    with pytest.raises(ValueError, match="same length"):
        field_calibration([0, 1], [0.1], ["a", "b"])


# ---- plot_reliability ----

def test_plot_reliability_draws_a_line_per_predictor_and_the_diagonal(calibrated):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, probs = calibrated
    labels, probs = labels[:20_000], probs[:20_000]
    fig, ax = plt.subplots()
    try:
        plot_reliability(ax, labels, {"model": probs, "halved": probs / 2}, n_bins=5, title="day 3")
        assert len(ax.lines) == 3
        model_line, halved_line, diagonal = ax.lines
        assert [text.get_text() for text in ax.get_legend().get_texts()] == ["model", "halved"]
        table = calibration_table(labels, probs, n_bins=5)
        np.testing.assert_allclose(model_line.get_xdata(), table["mean_prediction"])
        np.testing.assert_allclose(model_line.get_ydata(), table["observed_rate"])
        assert (np.asarray(halved_line.get_ydata()) > np.asarray(halved_line.get_xdata())).all()
        assert diagonal.get_linestyle() == "--"
        np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_title() == "day 3"
    finally:
        plt.close(fig)


def test_field_calibration_ratio_is_nan_without_positives():
    table = field_calibration([0, 0, 1, 0], [0.1, 0.2, 0.5, 0.5], ["a", "a", "b", "b"])
    assert np.isnan(table.loc["a", "ratio"])
    assert table.loc["b", "ratio"] == pytest.approx(1.0)
