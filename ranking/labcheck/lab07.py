"""Checks for lab 7, calibration and delayed conversions (labs/07_calibration.ipynb).

Exercises: the expected calibration error over equal-count (quantile) bins, the
closed-form correction of negative downsampling, Platt scaling fitted by hand, and
the correction of a model trained on a fake-negative stream.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .common import as_float, call, close, correct
from .mistakes import Answers

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


def _same_array(theirs, got: np.ndarray) -> bool:
    return np.allclose(theirs, got, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------- quantile ECE
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
    answers = Answers(name, same=lambda theirs, got: close(theirs, got, rel=1e-6, abs_=1e-12))
    for case, labels, probs, n_bins in _ece_cases():
        got = as_float(call(quantile_ece, labels.copy(), probs.copy(), n_bins), name)
        answers.add(got, labels, probs, n_bins)
        expected = ece(labels, probs, n_bins=n_bins, strategy="quantile")
        if close(got, expected, rel=1e-6, abs_=1e-12):
            continue
        hint = answers.hint("ECE = sum over bins of n_k / n * |mean label - mean "
                            "prediction|, with bins cut at the quantiles of the predictions.")
        raise AssertionError(f"With {case}: expected {expected:.6f}, got {got:.6f}. {hint}")
    correct(f"{name} agrees with ranking.metrics.ece(strategy='quantile'), ties included.")


# ------------------------------------------------------------ downsampling correction
def check_correct_downsampling(correct_downsampling: Callable) -> None:
    """Check ``correct_downsampling(probs, keep_rate) -> array`` against the package's."""
    from ..calibration import correct_downsampling as reference

    name = "correct_downsampling"
    probs = np.array([0.0, 1e-4, 0.01, 0.1, 0.3, 0.5, 0.8, 0.99, 1.0])
    answers = Answers(name, same=_same_array)
    for keep_rate in (0.1, 0.5, 0.02, 1.0):
        original = probs.copy()
        got = _array_result(name, call(correct_downsampling, original, keep_rate),
                            probs.shape)
        if not np.array_equal(original, probs):
            raise AssertionError(f"{name} changed its input array: return a new one.")
        answers.add(got, probs, keep_rate)
        expected = reference(probs, keep_rate)
        if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
            continue
        hint = answers.hint("Each kept negative stands for 1 / w negatives of the full log: "
                            "q = p / (p + (1 - p) / w).")
        if keep_rate == 1.0 and not np.allclose(got, probs):
            hint = "With keep_rate = 1 nothing was dropped: q must equal p. " + hint
        raise AssertionError(f"With keep_rate = {keep_rate} and p = {probs.tolist()}: "
                             f"expected {np.round(expected, 6).tolist()}, got "
                             f"{np.round(got, 6).tolist()}. {hint}")
    correct(f"{name} maps a downsampled model's probabilities back to true rates.")


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
    from ..calibration import PlattScaling

    name = "platt_scale"
    answers = Answers(name, same=lambda theirs, got: np.allclose(theirs, got, atol=2e-3))
    for case, probs, labels, planted in _platt_cases():
        slope, bias = _slope_and_bias(name, case, platt_scale, probs, labels)
        answers.add((slope, bias), probs, labels)
        reference = PlattScaling().fit(probs, labels)
        expected = (reference.slope, reference.bias)
        if abs(slope - expected[0]) < 2e-3 and abs(bias - expected[1]) < 2e-3:
            continue
        loss, best = _platt_loss(probs, labels, slope, bias), _platt_loss(probs, labels,
                                                                          *expected)
        fallback = ("Maximize the likelihood of the labels under sigmoid(slope * logit(p) + "
                    "bias), for instance by Newton's method on the log loss, with p clipped "
                    "to [1e-7, 1 - 1e-7].")
        if loss > best + 1e-7:
            fallback = (f"Your pair has a log loss of {loss:.5f} on these labels, the best "
                        f"pair {best:.5f}: your fit has not reached the minimum of the log "
                        "loss. Take more steps (gradient descent needs thousands here), or "
                        "use Newton's method, which converges in a handful.")
        raise AssertionError(
            f"With {case}: expected (slope, bias) = ({expected[0]:.4f}, "
            f"{expected[1]:.4f}) (the data were made with {planted}), got "
            f"({slope:.4f}, {bias:.4f}). {answers.hint(fallback)}")
    correct(f"{name} finds the slope and bias of ranking.calibration.PlattScaling.")


def _slope_and_bias(name: str, case: str, platt_scale: Callable, probs: np.ndarray,
                    labels: np.ndarray) -> tuple[float, float]:
    """The reader's pair, once it is two finite numbers."""
    clip = "Clip p to [1e-7, 1 - 1e-7] before the logit: logit(0) and logit(1) are infinite."
    try:
        with np.errstate(all="ignore"):
            got = call(platt_scale, probs.copy(), labels.copy())
    except (np.linalg.LinAlgError, FloatingPointError, OverflowError) as error:
        raise AssertionError(
            f"With {case}, {name} raised {type(error).__name__}: {error}. {clip}") from None
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise AssertionError(f"{name} should return a pair (slope, bias), got "
                             f"{type(got).__name__}: {got!r}")
    try:
        slope, bias = (float(value) for value in got)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return two numbers (slope, bias), got "
                             f"{got!r}") from None
    if not (np.isfinite(slope) and np.isfinite(bias)):
        raise AssertionError(f"With {case}, {name} returned ({slope}, {bias}). {clip}")
    return slope, bias


def _platt_loss(probs: np.ndarray, labels: np.ndarray, slope: float,
                bias: float) -> float:
    q = np.clip(_sigmoid(slope * _logit(probs) + bias), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(q) + (1 - labels) * np.log1p(-q)))


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
    got = _array_result(name, call(fake_negative_correction, original), stream.shape)
    if not np.array_equal(original, stream):
        raise AssertionError(f"{name} changed its input array: return a new one.")
    expected = reference(stream)
    if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
        correct(f"{name} recovers the true rate from the stream's b = p / (1 + p).")
        return
    answers = Answers(name, same=_same_array)
    answers.add(got, stream)
    raise AssertionError(f"For true rates {true_rates.tolist()} the stream's rates are "
                         f"b = {np.round(stream, 6).tolist()}; expected "
                         f"{np.round(expected, 6).tolist()}, got "
                         f"{np.round(got, 6).tolist()}. "
                         f"{answers.hint('Solve b = p / (1 + p) for p.')}")
