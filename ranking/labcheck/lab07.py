"""Checks for lab 7, calibration and delayed conversions (labs/07_calibration.ipynb).

Exercises: the expected calibration error over equal-count (quantile) bins, the
closed-form correction of negative downsampling, Platt scaling fitted by hand, and
the correction of a model trained on a fake-negative stream.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ._common import _as_float, _call, _close, _correct

__all__ = ["check_quantile_ece", "check_correct_downsampling", "check_platt_scale",
           "check_fake_negative_correction"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def _array_result(name: str, got, shape: tuple) -> np.ndarray:
    try:
        array = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return an array of numbers, got "
                             f"{type(got).__name__}") from None
    if array.shape != shape:
        raise AssertionError(f"{name} should return one number per input, shape {shape}, "
                             f"got shape {array.shape}.")
    if np.isnan(array).any():
        raise AssertionError(f"{name} returned NaN for some inputs: look for 0 / 0 at "
                             "p = 0 or p = 1.")
    return array


# --------------------------------------------------------------------- quantile ECE
def _binned(labels: np.ndarray, probs: np.ndarray, bins: np.ndarray, n_bins: int):
    count = np.bincount(bins, minlength=n_bins)
    clicks = np.bincount(bins, weights=labels, minlength=n_bins)
    predicted = np.bincount(bins, weights=probs, minlength=n_bins)
    return count, clicks, predicted


def _ece_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """Over-confident predictions of a rare event; the last case has many ties."""
    rng = np.random.default_rng(7)
    true_logit = rng.normal(-3.2, 1.0, size=3000)
    probs = _sigmoid(1.6 * true_logit + 1.5)          # over-confident, off on average
    labels = (rng.random(3000) < _sigmoid(true_logit)).astype(float)
    tied = np.round(probs, 2)                          # few distinct scores
    return [("distinct predictions, 10 bins", labels, probs, 10),
            ("distinct predictions, 7 bins", labels, probs, 7),
            ("predictions rounded to 2 decimals (many ties), 10 bins", labels, tied, 10)]


def check_quantile_ece(quantile_ece: Callable) -> None:
    """Check ``quantile_ece(labels, probs, n_bins) -> float`` against ``metrics.ece``."""
    from ..metrics import ece

    name = "quantile_ece"
    for case, labels, probs, n_bins in _ece_cases():
        got = _as_float(_call(quantile_ece, labels.copy(), probs.copy(), n_bins), name)
        expected = ece(labels, probs, n_bins=n_bins, strategy="quantile")
        if _close(got, expected, rel=1e-6, abs_=1e-12):
            continue
        edges = np.quantile(probs, np.linspace(0, 1, n_bins + 1))
        bins = np.searchsorted(edges[1:-1], probs)
        count, clicks, predicted = _binned(labels, probs, bins, n_bins)
        full = count > 0
        gaps = np.abs(clicks[full] / count[full] - predicted[full] / count[full])
        chunks = np.zeros(len(probs), dtype=int)
        for k, rows in enumerate(np.array_split(np.argsort(probs, kind="stable"), n_bins)):
            chunks[rows] = k
        _, c_clicks, c_predicted = _binned(labels, probs, chunks, n_bins)
        suspects = {
            "uniform": ece(labels, probs, n_bins=n_bins, strategy="uniform"),
            "unweighted": float(gaps.mean()),
            "unweighted with empty bins": float(gaps.sum() / n_bins),
            "per row": float(np.abs(labels - probs).mean()),
            "no abs": float((clicks - predicted).sum() / len(labels)),
            "no abs per bin": float(np.mean((clicks[full] - predicted[full]) / count[full])),
            "chunks": float(np.abs(c_clicks - c_predicted).sum() / len(labels)),
            "upper": _upper_bin_ece(labels, probs, edges, n_bins),
            "10 bins": ece(labels, probs, n_bins=10, strategy="quantile"),
        }
        hints = {
            "uniform": "These are equal-width bins on [0, 1]: with rare clicks almost "
                       "every prediction falls into the first one. Cut at quantiles of "
                       "the predictions: np.quantile(probs, np.linspace(0, 1, n_bins + 1)).",
            "unweighted": "Each bin's gap must be weighted by its share of the rows, "
                          "n_k / n: the bins are not all of one size (when n_bins does "
                          "not divide the rows, or predictions are tied).",
            "unweighted with empty bins": "Each bin's gap must be weighted by its share of "
                                          "the rows, n_k / n; an empty bin weighs 0.",
            "per row": "That is the mean of |y - p| row by row, which is large even for "
                       "the oracle. Average labels and predictions within each bin first, "
                       "then compare the two averages.",
            "no abs": "Gaps of opposite signs cancel: a model too high in some bins and "
                      "too low in others is not calibrated. Take each bin's absolute gap.",
            "no abs per bin": "Gaps of opposite signs cancel: take each bin's absolute gap.",
            "chunks": "Tied predictions must stay in one bin: cut at the quantile edges, "
                      "a row in bin k when edges[k] < p <= edges[k + 1] "
                      "(np.searchsorted(edges[1:-1], probs)), not into chunks of equal size.",
            "upper": "A prediction equal to an edge belongs to the lower bin: bin k "
                     "holds edges[k] < p <= edges[k + 1], which np.searchsorted(edges[1:-1], "
                     "probs) gives with its default side='left'.",
            "10 bins": "Use the n_bins argument.",
        }
        hint = next((hints[key] for key, value in suspects.items()
                     if _close(got, value, rel=1e-6, abs_=1e-12)),
                    "ECE = sum over bins of n_k / n * |mean label - mean prediction|, "
                    "with bins cut at the quantiles of the predictions.")
        raise AssertionError(f"With {case}: expected {expected:.6f}, got {got:.6f}. {hint}")
    _correct(f"{name} agrees with ranking.metrics.ece(strategy='quantile'), ties included.")


def _upper_bin_ece(labels: np.ndarray, probs: np.ndarray, edges: np.ndarray,
                   n_bins: int) -> float:
    """The ECE with each prediction on an edge put in the bin above it."""
    bins = np.searchsorted(edges[1:-1], probs, side="right")
    _, clicks, predicted = _binned(labels, probs, bins, n_bins)
    return float(np.abs(clicks - predicted).sum() / len(labels))


# ------------------------------------------------------------ downsampling correction
def check_correct_downsampling(correct_downsampling: Callable) -> None:
    """Check ``correct_downsampling(probs, keep_rate) -> array`` against the package's."""
    from ..calibration import correct_downsampling as reference

    name = "correct_downsampling"
    probs = np.array([0.0, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.8, 0.99, 1.0])
    for keep_rate in (0.1, 0.5, 0.02, 1.0):
        original = probs.copy()
        got = _array_result(name, _call(correct_downsampling, original, keep_rate),
                            probs.shape)
        if not np.array_equal(original, probs):
            raise AssertionError(f"{name} changed its input array: return a new one.")
        expected = reference(probs, keep_rate)
        if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
            continue
        w, p = keep_rate, probs
        suspects = {
            "linear": p * w,
            "forward": p / (p + (1 - p) * w),
            "divided": np.minimum(p / w, 1.0),
            "one minus": p / (p + (1 - p) / (1 - w)) if w < 1 else None,
            "one minus times": p / (p + (1 - p) * (1 - w)),
        }
        hints = {
            "linear": "The shortcut p * w holds for small p only: at p = 0.5 and w = 0.1 the "
                      "true rate is 0.5 / (0.5 + 0.5 / 0.1) = 0.091, not 0.05.",
            "forward": "That maps a true rate to what the downsampled model learns; you "
                       "need the way back: q = p / (p + (1 - p) / w).",
            "divided": "The model trained on few negatives predicts too HIGH: the "
                       "correction must lower its probabilities, not raise them.",
            "one minus": "The keep rate is the share of negatives KEPT (w), not the share "
                         "dropped: q = p / (p + (1 - p) / w).",
            "one minus times": "The keep rate is the share of negatives KEPT (w): "
                               "q = p / (p + (1 - p) / w).",
        }
        hint = next((hints[key] for key, value in suspects.items()
                     if value is not None and np.allclose(got, value, rtol=1e-9,
                                                          atol=1e-12)),
                    "Each kept negative stands for 1 / w negatives of the full log: "
                    "q = p / (p + (1 - p) / w).")
        if keep_rate == 1.0 and not np.allclose(got, probs):
            hint = "With keep_rate = 1 nothing was dropped: q must equal p. " + hint
        raise AssertionError(f"With keep_rate = {keep_rate} and p = {probs.tolist()}: "
                             f"expected {np.round(expected, 6).tolist()}, got "
                             f"{np.round(got, 6).tolist()}. {hint}")
    _correct(f"{name} maps a downsampled model's probabilities back to true rates.")


# ------------------------------------------------------------------- Platt scaling
def _platt_cases() -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, float]]]:
    rng = np.random.default_rng(11)
    n = 20_000
    probs = _sigmoid(rng.normal(-2.5, 1.2, size=n))
    over = (rng.random(n) < _sigmoid(0.7 * _logit(probs) - 0.4)).astype(float)
    calibrated = (rng.random(n) < probs).astype(float)
    saturated = probs.copy()
    saturated[:3], saturated[3:6] = 0.0, 1.0           # float32 scores can reach 0 and 1
    saturated_labels = over.copy()
    saturated_labels[:3], saturated_labels[3:6] = 0.0, 1.0
    return [("labels drawn from sigmoid(0.7 * logit(p) - 0.4)", probs, over, (0.7, -0.4)),
            ("a calibrated model (labels drawn from p)", probs, calibrated, (1.0, 0.0)),
            ("some predictions exactly 0 or 1", saturated, saturated_labels, (0.7, -0.4))]


def check_platt_scale(platt_scale: Callable) -> None:
    """Check ``platt_scale(probs, labels) -> (slope, bias)`` against ``PlattScaling``."""
    from ..calibration import PlattScaling, fit_logistic

    name = "platt_scale"
    for case, probs, labels, planted in _platt_cases():
        try:
            with np.errstate(all="ignore"):
                got = _call(platt_scale, probs.copy(), labels.copy())
        except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as error:
            raise AssertionError(
                f"With {case}, {name} raised {type(error).__name__}: {error}. Clip p to "
                "[1e-7, 1 - 1e-7] before the logit: logit(0) and logit(1) are "
                "infinite.") from None
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise AssertionError(f"{name} should return a pair (slope, bias), got "
                                 f"{type(got).__name__}: {got!r}")
        try:
            slope, bias = (float(value) for value in got)
        except (TypeError, ValueError):
            raise AssertionError(f"{name} should return two numbers (slope, bias), got "
                                 f"{got!r}") from None
        if not (np.isfinite(slope) and np.isfinite(bias)):
            raise AssertionError(
                f"With {case}, {name} returned ({slope}, {bias}). Clip p to "
                "[1e-7, 1 - 1e-7] before the logit: logit(0) and logit(1) are infinite.")
        reference = PlattScaling().fit(probs, labels)
        expected = (reference.slope, reference.bias)
        if abs(slope - expected[0]) < 2e-3 and abs(bias - expected[1]) < 2e-3:
            continue
        on_probs, on_probs_bias = fit_logistic(probs[:, None], labels)
        through_zero = _slope_only(_logit(probs), labels)
        if abs(slope - expected[1]) < 2e-3 and abs(bias - expected[0]) < 2e-3:
            hint = "Slope and bias are swapped: return (slope, bias)."
        elif abs(slope - on_probs[0]) < 2e-2 and abs(bias - on_probs_bias) < 2e-2:
            hint = ("That is a regression on p itself: Platt scaling regresses the "
                    "labels on logit(p) = log(p / (1 - p)).")
        elif abs(slope - through_zero) < 2e-2 and abs(bias) < 1e-6:
            hint = "The bias is missing: fit a slope AND a bias."
        elif np.allclose((slope, bias), np.polyfit(_logit(probs), labels, 1), atol=1e-3):
            hint = ("That is a least-squares line through the labels, not a logistic "
                    "regression: fit sigmoid(slope * logit(p) + bias) by log loss.")
        elif _platt_loss(probs, labels, slope, bias) > _platt_loss(probs, labels,
                                                                    *expected) + 1e-7:
            hint = (f"Your pair has a log loss of "
                    f"{_platt_loss(probs, labels, slope, bias):.5f} on these labels, the "
                    f"best pair {_platt_loss(probs, labels, *expected):.5f}: your fit has "
                    "not reached the minimum of the log loss. Take more steps (gradient "
                    "descent needs thousands here), or use Newton's method, which "
                    "converges in a handful.")
        else:
            hint = ("Maximize the likelihood of the labels under "
                    "sigmoid(slope * logit(p) + bias), for instance by Newton's method "
                    "on the log loss, with p clipped to [1e-7, 1 - 1e-7].")
        raise AssertionError(
            f"With {case}: expected (slope, bias) = ({expected[0]:.4f}, "
            f"{expected[1]:.4f}) (the data were made with {planted}), got "
            f"({slope:.4f}, {bias:.4f}). {hint}")
    _correct(f"{name} finds the slope and bias of ranking.calibration.PlattScaling.")


def _platt_loss(probs: np.ndarray, labels: np.ndarray, slope: float,
                bias: float) -> float:
    q = np.clip(_sigmoid(slope * _logit(probs) + bias), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log1p(-q)))


def _slope_only(x: np.ndarray, y: np.ndarray) -> float:
    slope = 0.0
    for _ in range(50):
        p = _sigmoid(slope * x)
        slope -= (x @ (p - y)) / max(float((x * x) @ (p * (1 - p))), 1e-12)
    return slope


# ------------------------------------------------------------ fake-negative correction
def check_fake_negative_correction(fake_negative_correction: Callable) -> None:
    """Check ``fake_negative_correction(b) -> p`` against ``delayed.fake_negative_correction``."""
    from ..delayed import fake_negative_correction as reference

    name = "fake_negative_correction"
    true_rates = np.array([0.0, 0.001, 0.02, 0.1, 0.3, 0.6, 1.0])
    # What a model learns from the stream: each click once as a negative, and a
    # converting click once more as a positive.
    stream = true_rates / (1 + true_rates)
    original = stream.copy()
    got = _array_result(name, _call(fake_negative_correction, original), stream.shape)
    if not np.array_equal(original, stream):
        raise AssertionError(f"{name} changed its input array: return a new one.")
    expected = reference(stream)
    if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        _correct(f"{name} recovers the true rate from the stream's b = p / (1 + p).")
        return
    b = stream
    suspects = {
        "unchanged": b,
        "forward": b / (1 + b),
        "one minus": 1 - b,
        "times": b * (1 - b),
        "double": 2 * b,
    }
    hints = {
        "unchanged": "That is b itself: the stream shows a converting click twice, "
                     "once as a negative, so b = p / (1 + p) is below p.",
        "forward": "Dividing by 1 + b goes the wrong way (it lowers b further): solve "
                   "b = p / (1 + p) for p.",
        "one minus": "1 - b is the stream's share of negatives, not the true rate: "
                     "solve b = p / (1 + p) for p.",
        "times": "Solve b = p / (1 + p) for p: b (1 + p) = p.",
        "double": "Doubling b is right only near b = 0: solve b = p / (1 + p) for p.",
    }
    hint = next((hints[key] for key, value in suspects.items()
                 if np.allclose(got, value, rtol=1e-9, atol=1e-12)),
                "Solve b = p / (1 + p) for p.")
    raise AssertionError(f"For true rates {true_rates.tolist()} the stream's rates are "
                         f"b = {np.round(b, 6).tolist()}; expected "
                         f"{np.round(expected, 6).tolist()}, got "
                         f"{np.round(got, 6).tolist()}. {hint}")
