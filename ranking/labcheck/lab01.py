"""Checks for lab 1, the ad log (labs/01_ad_log.ipynb).

Exercises: the normalized entropy of predictions, the surface with the highest click rate, and
the share of conversions that a reporting cutoff misses.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import pandas as pd

from .common import as_float, call, close, correct, entropy, log_loss
from .mistakes import Answers

SURFACES: tuple[str, ...] = ("home_feed", "related_pins", "search")

__all__ = ["check_normalized_entropy", "check_highest_ctr_surface",
           "check_missed_conversion_share"]


# ------------------------------------------------------------- normalized entropy
def _ne_cases(seed: int = 0) -> list[tuple[str, Any, Any]]:
    """(description, labels, probs) cases with both classes and probs inside (0, 1)."""
    rng = np.random.default_rng(seed)
    cases = []
    sizes_and_rates = [(50, 0.3), (400, 0.05), (2_000, 0.02), (1_000, 0.5), (300, 0.1)]
    for i, (n, rate) in enumerate(sizes_and_rates):
        logits = rng.normal(np.log(rate / (1 - rate)), 1.0, n)
        probs = 1 / (1 + np.exp(-logits))
        labels = (rng.random(n) < probs).astype(np.int8)
        labels[:2] = [0, 1]  # both classes present
        if i % 2:  # half of the cases as pandas Series, like the ad log's columns
            cases.append((f"{n} random rows (pandas Series)", pd.Series(labels), pd.Series(probs)))
        else:
            cases.append((f"{n} random rows (numpy arrays)", labels, probs))
    return cases


def check_normalized_entropy(normalized_entropy: Callable) -> None:
    """Check ``normalized_entropy(labels, probs)`` (He et al. 2014) on random cases."""
    name = "normalized_entropy"
    answers = Answers(name, same=close)
    definition = ("NE = (mean log loss) / (entropy of the base rate), and the log loss needs "
                  "both terms, y log p and (1 - y) log(1 - p).")
    # 1. predicting the base rate everywhere scores exactly 1
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 0], dtype=np.int8)
    base = np.full(labels.size, labels.mean())
    got = as_float(call(normalized_entropy, labels, base), name)
    answers.add(got, labels, base)
    if not close(got, 1.0):
        raise AssertionError("Predicting the base rate (0.2) for every row should give "
                             f"NE = 1.0, got {got:.6f}. {answers.hint(definition)}")
    # 2. random cases
    for description, labels, probs in _ne_cases():
        y, p = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
        expected = log_loss(y, p) / entropy(y.mean())
        got = as_float(call(normalized_entropy, labels, probs), name)
        answers.add(got, labels, probs)
        if close(got, expected):
            continue
        raise AssertionError(f"{description}: expected NE = {expected:.6f}, got {got:.6f}. "
                             f"{answers.hint(definition)}")
    correct(f"{name} matches the definition on {len(_ne_cases()) + 1} cases "
            "(the base-rate predictor scores exactly 1).")


# ------------------------------------------------------------- highest-CTR surface
def _crafted_surface_frame(clicks: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """impressions with ``surface`` and ``click``: {surface: (impressions, clicks)}."""
    surfaces, click = [], []
    for surface, (n, c) in clicks.items():
        surfaces += [surface] * n
        click += [1] * c + [0] * (n - c)
    order = np.random.default_rng(0).permutation(len(click))  # mix the surfaces' rows
    frame = pd.DataFrame({
        "surface": pd.Categorical(np.asarray(surfaces)[order], categories=list(SURFACES)),
        "click": np.asarray(click, dtype=np.int8)[order],
    })
    frame["timestamp"] = np.arange(len(frame), dtype=np.int64) * 60
    return frame


def _highest_ctr(frame: pd.DataFrame) -> tuple[str, pd.Series]:
    ctr = frame.groupby("surface", observed=True)["click"].mean()
    return str(ctr.idxmax()), ctr


def check_highest_ctr_surface(highest_ctr_surface: Callable,
                              impressions: pd.DataFrame | None = None) -> None:
    """Check ``highest_ctr_surface(impressions) -> str`` on crafted frames and the real log."""
    name = "highest_ctr_surface"
    crafted = [
        # most clicks on the home feed, highest click *rate* on related pins, search lowest
        ("crafted log 1", {"home_feed": (1_000, 30), "related_pins": (100, 5), "search": (50, 1)}),
        # the home feed wins here, with the fewest impressions; most clicks on search
        ("crafted log 2", {"home_feed": (40, 4), "related_pins": (500, 20), "search": (300, 25)}),
    ]
    frames = [(label, _crafted_surface_frame(spec)) for label, spec in crafted]
    if impressions is not None:
        frames.append(("the lab's ad log", impressions))
    got_answers = [call(highest_ctr_surface, frame.copy()) for _, frame in frames]
    _check_surface_answers(name, got_answers, [_highest_ctr(frame)[0] for _, frame in frames])
    answers = Answers(name, same=operator.eq)
    for (_, frame), got in zip(frames, got_answers):
        answers.add(got, frame)
    for (label, frame), got in zip(frames, got_answers):
        expected, ctr = _highest_ctr(frame)
        if got == expected:
            continue
        rates = ", ".join(f"{s} {r:.2%}" for s, r in ctr.items())
        fallback = (f"{got!r} is not a surface: choose one of {SURFACES}." if got not in SURFACES
                    else "Compute each surface's mean click on the frame you are given.")
        raise AssertionError(f"On {label} the highest CTR is on {expected!r}, you returned "
                             f"{got!r}. Observed click rates there: {rates}. "
                             f"{answers.hint(fallback)}")
    answer, ctr = _highest_ctr(frames[-1][1])
    where = "the lab's ad log" if impressions is not None else "the crafted logs"
    correct(f"{answer} has the highest observed CTR on {where} ({ctr[answer]:.2%}).")


def _check_surface_answers(name: str, got_answers: list, expected: list[str]) -> None:
    """Each answer is a surface's name, and not one name whatever the log."""
    if len(set(map(repr, got_answers))) == 1 and len(set(expected)) > 1:
        raise AssertionError(
            f"{name} returned {got_answers[0]!r} for every log, but the answer differs between "
            "them: compute it from the frame you are given (group by surface, average the "
            "clicks).")
    for got in got_answers:
        if not isinstance(got, str):
            raise AssertionError(
                f"{name} should return the surface's name as a str (e.g. 'search'), "
                f"got {type(got).__name__}: {got!r}. Hint: str(...) of a pandas label works."
            )


# --------------------------------------------------------- missed conversion share
def _crafted_conversion_frame() -> pd.DataFrame:
    """Clicked rows whose conversions arrive at known delays, plus rows that do not convert."""
    hours = np.array([0.1, 0.5, 2.0, 5.0, 12.0, 23.9, 24.0, 24.1, 30.0, 72.0, 200.0, 400.0])
    n_conv = hours.size
    n_clicks_only, n_no_click = 30, 60
    n = n_conv + n_clicks_only + n_no_click
    rng = np.random.default_rng(1)
    timestamp = np.sort(rng.integers(0, 14 * 86_400, n)).astype(np.int64)
    click = np.r_[np.ones(n_conv + n_clicks_only), np.zeros(n_no_click)].astype(np.int8)
    conversion = np.r_[np.ones(n_conv), np.zeros(n_clicks_only + n_no_click)].astype(np.int8)
    conversion_ts = np.full(n, np.nan)
    conversion_ts[:n_conv] = timestamp[:n_conv] + hours * 3600.0
    order = rng.permutation(n)
    return pd.DataFrame({
        "surface": pd.Categorical(rng.choice(list(SURFACES), n), categories=list(SURFACES)),
        "timestamp": timestamp[order],
        "click": click[order],
        "conversion": conversion[order],
        "conversion_timestamp": conversion_ts[order],
    })


def _missed_share(frame: pd.DataFrame, cutoff_hours: float) -> float:
    converted = frame[(frame["click"] == 1) & (frame["conversion"] == 1)]
    delay = (converted["conversion_timestamp"].to_numpy(float)
             - converted["timestamp"].to_numpy(float))
    return float(np.mean(delay > cutoff_hours * 3600.0))


def check_missed_conversion_share(missed_conversion_share: Callable,
                                  impressions: pd.DataFrame | None = None) -> None:
    """Check ``missed_conversion_share(impressions, cutoff_hours=24.0) -> float``."""
    name = "missed_conversion_share"
    crafted = _crafted_conversion_frame()
    cases: list[tuple[str, pd.DataFrame, dict]] = [
        ("the crafted log with the default cutoff", crafted, {}),
        ("the crafted log with cutoff_hours=1", crafted, {"cutoff_hours": 1.0}),
        ("the crafted log with cutoff_hours=72", crafted, {"cutoff_hours": 72.0}),
    ]
    if impressions is not None:
        cases.append(("the lab's ad log", impressions, {}))
        cases.append(("the lab's ad log with cutoff_hours=6", impressions, {"cutoff_hours": 6.0}))
    answers = Answers(name, same=close)
    for label, frame, kwargs in cases:
        expected = _missed_share(frame, kwargs.get("cutoff_hours", 24.0))
        got = as_float(call(missed_conversion_share, frame.copy(), **kwargs), name)
        answers.add(got, frame, **kwargs)
        if close(got, expected, rel=1e-9, abs_=1e-12):
            continue
        hint = answers.hint("Among clicked impressions with conversion == 1, count those with "
                            "conversion_timestamp - timestamp > cutoff_hours * 3600 "
                            "(timestamps are seconds).")
        raise AssertionError(f"On {label}: expected {expected:.4f}, got {got:.4f}. {hint}")
    label, frame, _ = cases[-2] if impressions is not None else cases[0]
    share = _missed_share(frame, 24.0)
    correct(f"on {label.replace(' with the default cutoff', '')}, {share:.1%} of the reported "
            "conversions arrive more than 24 hours after the impression: a model trained on "
            "one-day-old labels never sees them.")
