"""Checks for lab 2, the GBDT baseline (labs/02_gbdt.ipynb).

Exercises: a leakage-free historical click rate, the share of the gap to the oracle a model
closes, and the number of boosting rounds to keep.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import pandas as pd

from .common import as_float, call, close, correct, log_loss
from .mistakes import Answers

__all__ = ["check_historical_ctr", "check_gap_closed", "check_rounds_to_keep"]


# ------------------------------------------------------------- historical click rate
def _reference_rate(frame: pd.DataFrame, key: str, prior: float,
                    strength: float) -> np.ndarray:
    """Smoothed click rate of each row's key over the seconds before its own, in row order."""
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    data = pd.DataFrame({"key": frame[key].to_numpy()[order],
                         "moment": frame["timestamp"].to_numpy()[order],
                         "click": frame["click"].to_numpy(np.int64)[order]})
    grouped = data.groupby("key", sort=False)["click"]
    seen = grouped.cumcount().to_numpy()
    clicks = (grouped.cumsum() - data["click"]).to_numpy()
    # rows of the same key and second all see only what came before that second
    same_second = data.groupby(["key", "moment"], sort=False)
    seen = seen - same_second.cumcount().to_numpy()
    clicks = clicks - (same_second["click"].cumsum() - data["click"]).to_numpy()
    rate = (clicks + strength * prior) / (seen + strength)
    out = np.empty(len(frame))
    out[order] = rate
    return out


def _crafted_rate_frames() -> list[tuple[str, pd.DataFrame]]:
    """Rows out of time order, ids that do not follow time, and impressions in the same second."""
    hand = pd.DataFrame({
        "impression_id": [5, 3, 0, 6, 1, 4, 2, 7],
        "user_id": [1, 2, 1, 1, 2, 1, 1, 2],
        "item_id": [10, 10, 11, 10, 11, 11, 10, 10],
        "timestamp": [500, 200, 100, 500, 300, 400, 150, 900],
        "click": [0, 1, 1, 1, 0, 1, 0, 1],
    }, index=[17, 11, 12, 18, 13, 15, 14, 19])
    rng = np.random.default_rng(2)
    n = 600
    random = pd.DataFrame({
        "impression_id": rng.permutation(n),
        "user_id": rng.integers(0, 12, n),
        "item_id": rng.integers(0, 30, n),
        "timestamp": rng.integers(0, 150, n).astype(np.int64),
        "click": (rng.random(n) < 0.25).astype(np.int8),
    }, index=rng.permutation(np.arange(5_000, 5_000 + n)))
    return [("an 8-row crafted log", hand), ("a 600-row crafted log", random)]


def _as_rates(got: Any, frame: pd.DataFrame, name: str) -> np.ndarray:
    """The reader's answer as floats in the order of ``frame``'s rows."""
    if isinstance(got, pd.Series) and len(got) == len(frame) and got.index.sort_values().equals(
            frame.index.sort_values()):
        got = got.reindex(frame.index)  # a Series carrying the frame's index: align on it
    try:
        values = np.asarray(got, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return one number per row (a numpy array or a "
                             f"pandas Series), got {type(got).__name__}") from None
    if values.size != len(frame):
        raise AssertionError(f"{name} returned {values.size} values for {len(frame)} rows: "
                             "return one rate per impression.")
    if np.isnan(values).any():
        raise AssertionError(f"{name} returned NaN: a key with no earlier impression gets the "
                             "prior.")
    return values


def check_historical_ctr(historical_ctr: Callable,
                         impressions: pd.DataFrame | None = None) -> None:
    """Check ``historical_ctr(impressions, key, prior, strength=50.0)`` on crafted logs and
    the real one."""
    name = "historical_ctr"
    cases = []
    for label, frame in _crafted_rate_frames():
        cases.append((label, frame, "user_id", 0.1, 2.0))
        cases.append((label, frame, "item_id", 0.3, 5.0))
    if impressions is not None:
        rate = float(impressions["click"].mean())
        cases.append(("the lab's ad log", impressions, "user_id", rate, 50.0))
        cases.append(("the lab's ad log", impressions, "advertiser_id", rate, 20.0))
    answers = Answers(name, same=_same_rates)
    for label, frame, key, prior, strength in cases:
        got = _as_rates(call(historical_ctr, frame.copy(), key, prior, strength=strength),
                        frame, name)
        answers.add(got, frame, key, prior, strength=strength)
        expected = _reference_rate(frame, key, prior, strength)
        wrong = np.flatnonzero(~np.isclose(got, expected, rtol=1e-9, atol=1e-12))
        if not wrong.size:
            continue
        row = int(wrong[0])
        hint = answers.hint("Count, for each row, the impressions and clicks of its key with "
                            "a smaller timestamp.")
        raise AssertionError(
            f"On {label} with key={key!r}, prior={prior}, strength={strength}: the rates "
            f"differ. First wrong row: position {row} (timestamp "
            f"{frame['timestamp'].iloc[row]}), expected {expected[row]:.6f}, got "
            f"{got[row]:.6f}. {hint}")
    label = "the lab's ad log" if impressions is not None else "the crafted logs"
    correct(f"{name} counts only earlier impressions and smooths toward the prior on {label} "
            f"({len(cases)} cases).")


def _same_rates(theirs: Any, got: np.ndarray) -> bool:
    """Whether a mistake's rates, in the rows' order, are the reader's."""
    return np.allclose(np.asarray(theirs, dtype=float), got, rtol=1e-9)


# ------------------------------------------------------------------------ gap closed
def _gap(y: np.ndarray, p: np.ndarray, oracle: np.ndarray, base_rate: float) -> float:
    base = log_loss(y, np.full(y.size, base_rate))
    return (base - log_loss(y, p)) / (base - log_loss(y, oracle))


def _gap_cases(test_frame: pd.DataFrame | None) -> list[tuple[str, Any, Any, Any, float]]:
    rng = np.random.default_rng(3)
    cases = []
    for n, rate, mix in [(400, 0.1, 0.5), (3_000, 0.03, 0.8), (1_000, 0.2, 0.2)]:
        oracle = 1 / (1 + np.exp(-rng.normal(np.log(rate / (1 - rate)), 1.2, n)))
        labels = (rng.random(n) < oracle).astype(np.int8)
        labels[:2] = [0, 1]
        probs = np.clip(mix * oracle + (1 - mix) * rate + rng.normal(0, 0.01, n), 1e-4, 1 - 1e-4)
        cases.append((f"{n} random rows", labels, probs, oracle, rate * 1.1))
    # scores unrelated to the rows: worse than the base rate
    worse = np.clip(cases[0][3][::-1], 1e-4, 1 - 1e-4)
    cases.append(("a model worse than the base rate", cases[0][1], worse, cases[0][3], 0.1))
    if test_frame is not None:
        y = test_frame["click"].to_numpy()
        oracle = test_frame["p_click"].to_numpy(np.float64)
        base_rate = float(test_frame["click"].iloc[: len(y) // 2].mean())
        probs = 0.6 * oracle + 0.4 * base_rate
        cases.append(("the lab's test days", pd.Series(y), pd.Series(probs), pd.Series(oracle),
                      base_rate))
    return cases


def check_gap_closed(gap_closed: Callable, test_frame: pd.DataFrame | None = None) -> None:
    """Check ``gap_closed(labels, probs, oracle_probs, base_rate) -> float``."""
    name = "gap_closed"
    cases = _gap_cases(test_frame)
    answers = Answers(name, same=close)
    for label, labels, probs, oracle, base_rate in cases:
        y, p, o = (np.asarray(a, dtype=float) for a in (labels, probs, oracle))
        expected = _gap(y, p, o, base_rate)
        got = as_float(call(gap_closed, labels, probs, oracle, base_rate), name)
        answers.add(got, labels, probs, oracle, base_rate)
        if close(got, expected, rel=1e-6, abs_=1e-9):
            continue
        hint = answers.hint("gap closed = (LL(base rate) - LL(model)) / (LL(base rate) - "
                            "LL(oracle)), with LL the mean log loss and the base rate "
                            "predicted for every row.")
        raise AssertionError(f"On {label}: expected {expected:.6f}, got {got:.6f}. {hint}")
    correct(f"{name} matches the definition on {len(cases)} cases, a model worse than the "
            "base rate included (its gap closed is negative).")


# ------------------------------------------------------------------- rounds to keep
def _rounds(losses: np.ndarray, tolerance: float) -> int:
    return int(np.flatnonzero(losses <= losses.min() + tolerance)[0]) + 1


def check_rounds_to_keep(rounds_to_keep: Callable, valid_curve: Any = None) -> None:
    """Check ``rounds_to_keep(valid_losses, tolerance=0.0) -> int`` on crafted and real curves."""
    name = "rounds_to_keep"
    cases: list[tuple[str, Any, dict]] = [
        ("a list falling then rising", [0.50, 0.40, 0.30, 0.35, 0.36], {}),
        ("a curve whose lowest value appears twice", np.array([0.50, 0.30, 0.40, 0.30, 0.45]), {}),
        ("a pandas Series indexed from 0", pd.Series([0.52, 0.41, 0.38, 0.37, 0.39, 0.40]), {}),
        ("a list with tolerance=0.011", [0.50, 0.31, 0.305, 0.30, 0.32], {"tolerance": 0.011}),
        ("a curve still falling at the end", [0.6, 0.5, 0.45, 0.44], {"tolerance": 0.0}),
    ]
    if valid_curve is not None:
        cases.append(("the lab's validation curve", valid_curve, {}))
        cases.append(("the lab's validation curve with tolerance=1e-4", valid_curve,
                      {"tolerance": 1e-4}))
    answers = Answers(name, same=operator.eq)
    for label, losses, kwargs in cases:
        expected = _rounds(np.asarray(losses, dtype=float), kwargs.get("tolerance", 0.0))
        got = call(rounds_to_keep, losses.copy(), **kwargs)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"{name} should return a whole number of rounds (int), "
                                 f"got {type(got).__name__}: {got!r}")
        answers.add(got, losses, **kwargs)
        if got == expected:
            continue
        hint = answers.hint("Return the smallest round r (counting from 1) whose loss is at "
                            "most the lowest loss + tolerance.")
        raise AssertionError(f"On {label}: expected {expected}, got {got}. {hint}")
    correct(f"{name} picks the right round on {len(cases)} curves.")
