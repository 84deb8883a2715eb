"""Delayed conversions: the delay CDF, its fit from censored clicks, the delayed-feedback model, fake negatives."""

import numpy as np
import pytest
import torch
from torch import nn

from ranking.delayed import (
    HOURS_OBSERVED,
    DelayDistribution,
    DelayedFeedbackModel,
    fake_negative_correction,
    fake_negative_stream,
    fit_delay_distribution,
    hours_observed,
)
from ranking.metrics import expected_logloss
from ranking.nn import LogisticRegression
from ranking.simulate.config import AdLogConfig
from ranking.simulate.logs import conversion_delays
from ranking.train import fit, predict

torch.set_num_threads(1)

WINDOW = 7 * 24.0
DELAY = DelayDistribution(weights=(0.5, 0.3, 0.2), mean_hours=(2.0, 20.0, 80.0), window_hours=WINDOW)
GROUP_EFFECT = np.array([-1.0, 0.0, 0.5, 1.0])


def sample_delays(rng, delay, n):
    """Delays from a mixture of exponentials, kept only when inside the window (rejection)."""
    out = np.empty(0)
    while len(out) < n:
        component = rng.choice(len(delay.weights), size=2 * n + 10, p=np.array(delay.weights))
        draws = rng.exponential(np.array(delay.mean_hours)[component])
        out = np.concatenate([out, draws[draws <= delay.window_hours]])
    return out[:n]


def censored_clicks(n, seed, rate=0.1, max_wait=WINDOW):
    """Clicks that waited U(0, max_wait) hours; each converts with ``rate`` after a DELAY delay.

    Returns (hours waited, delay if reported by the cutoff else NaN, delay of every conversion).
    """
    rng = np.random.default_rng(seed)
    waited = rng.uniform(0, max_wait, n)
    converted = rng.random(n) < rate
    delay = np.full(n, np.nan)
    delay[converted] = sample_delays(rng, DELAY, int(converted.sum()))
    reported = np.where(delay <= waited, delay, np.nan)
    return waited, reported, delay


# ---- DelayDistribution ----

def test_cdf_is_zero_at_zero_one_at_the_window_and_monotone():
    hours = np.linspace(0, 2 * WINDOW, 1001)
    cdf = DELAY.cdf(hours)
    assert cdf[0] == pytest.approx(0.0, abs=1e-12)
    assert DELAY.cdf(np.array([WINDOW]))[0] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(cdf[hours >= WINDOW], 1.0, atol=1e-12)      # nothing counts after the window
    assert (np.diff(cdf) >= 0).all()
    assert (np.diff(cdf[hours < WINDOW]) > 0).all()
    assert 0.3 < DELAY.cdf(np.array([2.0]))[0] < 0.5       # the fast half is mostly in by its mean


def test_cdf_of_one_exponential_is_the_truncated_closed_form():
    mean, window = 10.0, 48.0
    delay = DelayDistribution((1.0,), (mean,), window)
    hours = np.array([0.5, 5.0, 10.0, 30.0, 47.9])
    expected = (1 - np.exp(-hours / mean)) / (1 - np.exp(-window / mean))
    np.testing.assert_allclose(delay.cdf(hours), expected, rtol=1e-12)


def test_cdf_of_a_mixture_is_the_closed_form():
    hours = np.array([1.0, 10.0, 50.0, 150.0])
    w, m = np.array(DELAY.weights), np.array(DELAY.mean_hours)
    reached = (w * (1 - np.exp(-hours[:, None] / m))).sum(axis=1)
    expected = reached / (w * (1 - np.exp(-WINDOW / m))).sum()
    np.testing.assert_allclose(DELAY.cdf(hours), expected, rtol=1e-12)


def test_of_config_is_the_delay_the_generator_samples():
    config = AdLogConfig()
    delay = DelayDistribution.of_config(config)
    assert delay.window_hours == 24.0 * config.attribution_days
    draws = conversion_delays(np.random.default_rng(0), config, 100_000)
    assert draws.max() <= delay.window_hours
    hours = np.array([0.25, 5.0, 24.0, 200.0, 500.0])
    empirical = (draws[:, None] <= hours).mean(axis=0)
    np.testing.assert_allclose(delay.cdf(hours), empirical, atol=0.006)


# ---- fit_delay_distribution ----

@pytest.fixture(scope="module")
def censored():
    return censored_clicks(40_000, seed=0)


def test_fit_recovers_a_planted_delay_and_rate(censored):
    waited, reported, _ = censored
    naive_rate = float((~np.isnan(reported)).mean())
    fitted, rate = fit_delay_distribution(waited, reported, WINDOW)
    assert fitted.window_hours == WINDOW
    assert list(fitted.mean_hours) == sorted(fitted.mean_hours)
    assert sum(fitted.weights) == pytest.approx(1.0)
    hours = np.array([1.0, 6.0, 24.0, 72.0, 150.0])
    np.testing.assert_allclose(fitted.cdf(hours), DELAY.cdf(hours), atol=0.03)
    assert rate == pytest.approx(0.1, rel=0.05)
    assert naive_rate < 0.93 * 0.1                           # what ignoring the censoring would say


def test_fit_is_not_fooled_by_the_delays_it_sees(censored):
    """Reported delays alone are biased short (slow conversions are still on their way)."""
    waited, reported, _ = censored
    seen = reported[~np.isnan(reported)]
    fitted, _ = fit_delay_distribution(waited, reported, WINDOW)
    day = np.array([24.0])
    assert (seen <= 24).mean() > DELAY.cdf(day)[0] + 0.04
    assert fitted.cdf(day)[0] == pytest.approx(DELAY.cdf(day)[0], abs=0.03)


def test_fit_rejects_bad_input(censored):
    waited, reported, _ = censored
    few = np.full(len(waited), np.nan)
    few[:29] = 0.5
    with pytest.raises(ValueError, match="only 29 reported conversions"):
        fit_delay_distribution(waited, few, WINDOW)
    negative = waited.copy()
    negative[0] = -1.0
    with pytest.raises(ValueError, match="negative time"):
        fit_delay_distribution(negative, reported, WINDOW)
    late = reported.copy()
    row = int(np.flatnonzero(~np.isnan(reported))[0])
    late[row] = waited[row] + 1.0
    with pytest.raises(ValueError, match="after the cutoff"):
        fit_delay_distribution(waited, late, WINDOW)
    with pytest.raises(ValueError, match="one length"):
        fit_delay_distribution(waited[:-1], reported, WINDOW)


# ---- DelayedFeedbackModel ----

class FixedLogits(nn.Module):
    """A stand-in network: the logits it is given, for two tasks."""

    def __init__(self, conversion, click):
        super().__init__()
        self.conversion = nn.Parameter(torch.as_tensor(conversion, dtype=torch.float32))
        self.click = torch.as_tensor(click, dtype=torch.float32)

    def forward(self, batch):
        return {"click": self.click, "conversion": self.conversion * 1.0}


def test_without_hours_observed_the_wrapped_logits_come_back_unchanged():
    inner = FixedLogits([-2.0, 0.0, 1.5], [0.3, 0.2, 0.1])
    out = DelayedFeedbackModel(inner, DELAY)({"x": torch.zeros(3)})
    torch.testing.assert_close(out["conversion"], inner.conversion.detach(), rtol=0, atol=0)
    torch.testing.assert_close(out["click"], inner.click, rtol=0, atol=0)


def test_with_hours_observed_the_logit_is_that_of_p_times_f():
    z = np.array([-3.0, -1.0, 0.0, 2.0, -2.0])
    hours = np.array([0.5, 6.0, 24.0, 100.0, 1000.0])        # the last past the window: F = 1
    inner = FixedLogits(z, np.zeros(5))
    out = DelayedFeedbackModel(inner, DELAY)({HOURS_OBSERVED: torch.tensor(hours, dtype=torch.float32)})
    q = 1 / (1 + np.exp(-z)) * DELAY.cdf(hours)
    np.testing.assert_allclose(out["conversion"].detach().numpy(), np.log(q / (1 - q)), rtol=1e-5, atol=1e-5)
    assert out["conversion"][-1].item() == pytest.approx(-2.0, abs=1e-5)
    torch.testing.assert_close(out["click"], torch.zeros(5), rtol=0, atol=0)   # other tasks untouched
    out["conversion"].sum().backward()                        # gradients reach the network
    assert inner.conversion.grad is not None and (inner.conversion.grad > 0).all()


def make_conversion_data(n, seed, max_wait=72.0):
    """Clicks with known conversion probabilities, labels read U(0, max_wait) hours after each click."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 4, n)
    dense = rng.normal(size=(n, 1))
    p = 1 / (1 + np.exp(-(-2.0 + GROUP_EFFECT[group] + 0.5 * dense[:, 0])))
    converted = rng.random(n) < p
    waited = rng.uniform(0, max_wait, n)
    reported = converted & (sample_delays(rng, DELAY, n) <= waited)
    data = {"group": torch.tensor(group), "dense": torch.tensor(dense, dtype=torch.float32),
            "label_conversion": torch.tensor(reported, dtype=torch.float32),
            HOURS_OBSERVED: torch.tensor(waited, dtype=torch.float32)}
    return data, p


@pytest.fixture(scope="module")
def trained():
    train, _ = make_conversion_data(40_000, seed=1)
    test, truth = make_conversion_data(20_000, seed=2)
    del test[HOURS_OBSERVED]                                  # serving: p(x) itself
    predictions = {}
    for name in ("delayed", "naive"):
        torch.manual_seed(0)
        network = LogisticRegression({"group": 4}, n_dense=1, tasks=("conversion",))
        model = DelayedFeedbackModel(network, DELAY) if name == "delayed" else network
        result = fit(model, train, tasks=("conversion",), lr=0.02, batch_size=2048, epochs=10,
                     start_at_base_rate=True, progress=False)
        predictions[name] = predict(result.model, test)["conversion"]
    return predictions, truth, test["group"].numpy()


def test_delayed_feedback_model_predicts_the_true_rate_where_a_naive_model_is_low(trained):
    predictions, truth, group = trained
    delayed, naive = predictions["delayed"], predictions["naive"]
    assert delayed.mean() == pytest.approx(truth.mean(), rel=0.06)
    assert naive.mean() < 0.88 * truth.mean()
    for g in range(4):
        on = group == g
        assert abs(delayed[on].mean() - truth[on].mean()) < abs(naive[on].mean() - truth[on].mean())
        assert delayed[on].mean() == pytest.approx(truth[on].mean(), rel=0.15)
    assert expected_logloss(truth, delayed) < expected_logloss(truth, naive)


def test_hours_observed_counts_hours_to_the_cutoff():
    cutoff = 1_000_000.0
    hours = hours_observed(np.array([cutoff, cutoff - 3600, cutoff - 36 * 3600]), cutoff)
    assert hours.dtype == torch.float32
    torch.testing.assert_close(hours, torch.tensor([0.0, 1.0, 36.0]))
    with pytest.raises(ValueError, match="after the cutoff"):
        hours_observed(np.array([cutoff - 10, cutoff + 1]), cutoff)


# ---- fake negatives ----

def test_fake_negative_stream_adds_each_reported_positive_once_more():
    data = {"user_id": torch.tensor([10, 11, 12, 13, 14]),
            "dense": torch.arange(10, dtype=torch.float32).reshape(5, 2),
            "label_conversion": torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0])}
    reported = torch.tensor([False, True, False, True, False])   # row 4's conversion not in yet
    stream = fake_negative_stream(data, reported)
    assert set(stream) == set(data)
    torch.testing.assert_close(stream["label_conversion"], torch.tensor([0.0] * 5 + [1.0, 1.0]))
    torch.testing.assert_close(stream["user_id"], torch.tensor([10, 11, 12, 13, 14, 11, 13]))
    torch.testing.assert_close(stream["dense"], torch.cat([data["dense"], data["dense"][[1, 3]]]))
    with pytest.raises(ValueError, match="one entry per row"):
        fake_negative_stream(data, reported[:4])


def test_fake_negative_correction_recovers_the_rate_from_the_stream():
    rng = np.random.default_rng(3)
    reported = torch.tensor(rng.random(10_000) < 0.07)
    stream = fake_negative_stream({"x": torch.zeros(10_000)}, reported)
    stream_rate = float(stream["label_conversion"].mean())          # b = p / (1 + p)
    assert stream_rate < float(reported.float().mean())
    assert fake_negative_correction(np.array([stream_rate]))[0] == pytest.approx(
        float(reported.float().mean()), rel=1e-6)


def test_fake_negative_correction_inverts_b_equals_p_over_one_plus_p():
    p = np.array([0.0, 0.01, 0.3, 1.0, 50.0])
    np.testing.assert_allclose(fake_negative_correction(p / (1 + p)), p, rtol=1e-12)
    for bad in ([0.2, 1.0], [1.5], [-0.1]):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            fake_negative_correction(np.array(bad))


def test_fit_without_an_attribution_window_recovers_the_rate():
    """attribution_days=inf is a valid config: the fit must not turn to NaN."""
    rng = np.random.default_rng(0)
    waited = rng.uniform(0, 500, 20_000)
    delay = np.where(rng.random(20_000) < 0.1, rng.exponential(20, 20_000), np.nan)
    delay[delay > waited] = np.nan
    fitted, rate = fit_delay_distribution(waited, delay, np.inf)
    assert abs(rate - 0.1) < 0.01
    assert np.isfinite(fitted.cdf(np.array([1.0, 24.0, 240.0]))).all()


def test_cdf_takes_a_scalar_and_refuses_negative_hours():
    delay = DelayDistribution((1.0,), (10.0,), 100.0)
    assert delay.cdf(5.0) == pytest.approx((1 - np.exp(-0.5)) / (1 - np.exp(-10)))
    with pytest.raises(ValueError, match=">= 0"):
        delay.cdf(np.array([-1.0]))
