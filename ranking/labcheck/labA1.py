"""Checks for lab A, the real log (labs/A1_real_log.ipynb).

Exercises: counting each rating's earlier ratings without seeing its own second,
and a paired bootstrap interval over users.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from .common import call, correct
from .mistakes import Answers

__all__ = ["check_ratings_before", "check_user_interval"]


# ------------------------------------------------------------------ ratings before
def _ratings_cases() -> list[tuple[str, pd.DataFrame, str]]:
    rng = np.random.default_rng(11)
    n = 400
    bursts = pd.DataFrame({"user_id": rng.integers(0, 12, n),
                           "item_id": rng.integers(0, 30, n),
                           "timestamp": 1_000 + rng.integers(0, 40, n) * 60})
    return [
        ("one user, three ratings in time order",
         pd.DataFrame({"user_id": [5, 5, 5], "item_id": [1, 2, 3],
                       "timestamp": [10, 20, 30]}), "user_id"),
        ("one user, rows out of time order",
         pd.DataFrame({"user_id": [5, 5, 5, 5], "item_id": [1, 2, 3, 4],
                       "timestamp": [30, 10, 40, 20]}), "user_id"),
        ("two ratings in the same second",
         pd.DataFrame({"user_id": [7, 7, 7, 7], "item_id": [1, 2, 3, 4],
                       "timestamp": [10, 20, 20, 30]}), "user_id"),
        ("two users whose ratings interleave",
         pd.DataFrame({"user_id": [1, 2, 1, 2, 1], "item_id": [9, 9, 8, 7, 7],
                       "timestamp": [10, 11, 12, 13, 14]}), "user_id"),
        ("400 ratings in bursts, counted per user", bursts, "user_id"),
        ("the same ratings, counted per film", bursts, "item_id"),
    ]


def _same_counts(theirs, got) -> bool:
    theirs, got = np.asarray(theirs, dtype=float), np.asarray(got, dtype=float)
    return theirs.shape == got.shape and bool(np.array_equal(theirs, got))


def check_ratings_before(ratings_before: Callable) -> None:
    """Check ``ratings_before(frame, key)`` against ``ranking.real.ratings_before``."""
    from ..real import ratings_before as reference

    name = "ratings_before"
    answers = Answers(name, same=_same_counts)
    for case, frame, key in _ratings_cases():
        kept = frame.copy()
        got = call(ratings_before, frame.copy(), key)
        got_array = np.asarray(got, dtype=float)
        expected = reference(kept, key)
        if got_array.shape != expected.shape:
            raise AssertionError(f"With {case}: expected one count per row, shape "
                                 f"{expected.shape}, got {got_array.shape}.")
        answers.add(got_array, frame.copy(), key)
        if np.array_equal(got_array, expected):
            continue
        row = int(np.flatnonzero(got_array != expected)[0])
        if np.array_equal(np.sort(got_array), np.sort(expected)):
            fallback = ("These are the right counts in another order: return them in "
                        "the frame's row order (from a sorted copy, .reindex(frame.index)"
                        " or .sort_index() before .to_numpy()).")
        else:
            fallback = ("Count, for each row, the rows with the same key and a strictly "
                        "smaller timestamp: the row itself and rows of the same second "
                        "do not count.")
        hint = answers.hint(fallback)
        raise AssertionError(
            f"With {case}: row {row} ({key} {frame[key].iloc[row]}, timestamp "
            f"{frame['timestamp'].iloc[row]}) should count {expected[row]:.0f} earlier "
            f"ratings, got {got_array[row]:g}. {hint}")
    correct(f"{name} counts only what was known before each rating, as "
            "ranking.real.ratings_before does.")


# ------------------------------------------------------------------- user interval
def _interval_case(seed: int = 12, n_users: int = 150):
    """Users who are easy or hard for both models: their rows are not independent."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(2, 25, n_users)
    users = np.repeat(rng.permutation(n_users) * 3 + 100, rows)       # ids with gaps
    taste = rng.normal(0, 1.2, n_users)
    truth = 1 / (1 + np.exp(-np.repeat(taste, rows)))
    labels = (rng.random(len(users)) < truth).astype(float)
    good = np.clip(truth + rng.normal(0, 0.05, len(users)), 0.02, 0.98)
    rough = np.clip(0.5 + 0.5 * (truth - 0.5) + rng.normal(0, 0.1, len(users)), 0.02, 0.98)
    order = rng.permutation(len(users))                                # rows mixed
    return users[order], labels[order], good[order], rough[order]


RESAMPLES = 6000
TOLERANCE = 0.05
"""How far (a share of the reference interval's width) each end may sit from it."""


def check_user_interval(user_interval: Callable) -> None:
    """Check ``user_interval(users, labels, probs_a, probs_b, resamples, seed)``: the
    95% paired bootstrap interval of log loss(a) - log loss(b) over users."""
    from ..bootstrap import paired_difference

    name = "user_interval"
    answers = Answers(name, same=_same_interval)
    users, labels, good, rough = _interval_case()
    same = _check_pair(call(user_interval, users, labels, good, good.copy(), 50, 0), name)
    answers.add(same, users, labels, good, good.copy(), 50, 0)
    if max(abs(same[0]), abs(same[1])) > 1e-12:
        hint = answers.hint("Score both models on the same resampled rows.")
        raise AssertionError(f"With two identical models: expected the interval (0, 0), "
                             f"got {same}. {hint}")
    got = call(user_interval, users.copy(), labels.copy(), good.copy(), rough.copy(),
               RESAMPLES, 1)
    low, high = _check_pair(got, name)
    answers.add((low, high), users, labels, good, rough, RESAMPLES, 1)
    reference = paired_difference(users, labels, good, rough, resamples=RESAMPLES, seed=1)
    if _same_interval((reference.low, reference.high), (low, high)):
        correct(f"{name} resamples whole users and scores both models on each "
                "resample: a paired bootstrap interval.")
        return
    hint = answers.hint(
        "Draw as many users as there are, with replacement; keep every row of each "
        "draw (repeated as often as the user was drawn); compute log loss(a) - log "
        "loss(b) on those rows; the interval is the 2.5th and 97.5th percentiles.")
    raise AssertionError(
        f"Expected about ({reference.low:.4f}, {reference.high:.4f}) (each end within "
        f"{TOLERANCE:.0%} of its width), got ({low:.4f}, {high:.4f}). {hint}")


def _check_pair(value, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return two numbers (low, high), got "
                             f"{value!r}") from None
    if not np.isfinite([low, high]).all():
        raise AssertionError(f"{name} returned {value!r}: look for log(0).")
    if low > high:
        raise AssertionError(f"{name} returned low {low:.4f} above high {high:.4f}: "
                             "return (low, high).")
    return low, high


def _same_interval(theirs, got) -> bool:
    """Each end of ``got`` within ``TOLERANCE`` of the width of ``theirs`` from its end."""
    (a_low, a_high), (b_low, b_high) = theirs, got
    width = max(abs(a_high - a_low), 1e-12)
    return (abs(a_low - b_low) <= TOLERANCE * width
            and abs(a_high - b_high) <= TOLERANCE * width)
