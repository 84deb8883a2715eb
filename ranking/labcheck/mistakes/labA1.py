"""Known mistakes of lab A, the real log (labs/A1_real_log.ipynb).

Exercises: ``ratings_before`` and ``user_interval``.
"""

from __future__ import annotations

import numpy as np

from ..common import log_loss, mistake


# ------------------------------------------------------------------ ratings before
@mistake("ratings_before",
         hint="A rating logged in the same second as another does not come after it: "
              "with cumcount, the row order decides which of them sees the other.")
def counts_by_row_order(frame, key):
    order = frame.sort_values([key, "timestamp"], kind="stable")
    return order.groupby(key).cumcount().reindex(frame.index).to_numpy(float)


@mistake("ratings_before",
         hint="Do not count the rating itself: the first rating of a key has 0 earlier "
              "ones.")
def counts_itself(frame, key):
    return frame.groupby(key)["timestamp"].rank(method="min").to_numpy(float)


@mistake("ratings_before",
         hint="Count within each key (each user, or each film), not over the whole log.")
def counts_every_key(frame, key):
    return (frame["timestamp"].rank(method="min") - 1).to_numpy(float)


@mistake("ratings_before",
         hint="Count rows strictly earlier in time, not rows earlier in the frame: the "
              "frame need not be sorted by time.")
def counts_earlier_rows(frame, key):
    return frame.groupby(key).cumcount().to_numpy(float)


@mistake("ratings_before",
         hint="Rows of the same second are not earlier: count strictly smaller "
              "timestamps, not smaller or equal ones.")
def counts_the_same_second(frame, key):
    return (frame.groupby(key)["timestamp"].rank(method="max") - 1).to_numpy(float)


# ------------------------------------------------------------------- user interval
def _difference(labels, a, b, rows):
    return log_loss(labels[rows], a[rows]) - log_loss(labels[rows], b[rows])


def _interval(values, confidence=0.95):
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _user_rows(users, rng):
    ids, codes = np.unique(users, return_inverse=True)
    draws = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
    return np.repeat(np.arange(len(users)), draws[codes])


@mistake("user_interval",
         hint="Resample users, not rows: a user's rows share that user's taste, so rows "
              "drawn one by one give an interval far too narrow.")
def resamples_rows(users, labels, probs_a, probs_b, resamples, seed):
    rng = np.random.default_rng(seed)
    n = len(users)
    return _interval([_difference(labels, probs_a, probs_b, rng.integers(0, n, n))
                      for _ in range(resamples)])


@mistake("user_interval",
         hint="Score both models on the SAME resample (a paired bootstrap): drawn apart, "
              "the users' own ease or difficulty does not cancel out.")
def resamples_each_model_apart(users, labels, probs_a, probs_b, resamples, seed):
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows_a, rows_b = _user_rows(users, rng), _user_rows(users, rng)
        values.append(log_loss(labels[rows_a], probs_a[rows_a])
                      - log_loss(labels[rows_b], probs_b[rows_b]))
    return _interval(values)


@mistake("user_interval",
         hint="A 95% interval runs from the 2.5th to the 97.5th percentile.")
def ninety_percent(users, labels, probs_a, probs_b, resamples, seed):
    rng = np.random.default_rng(seed)
    return _interval([_difference(labels, probs_a, probs_b, _user_rows(users, rng))
                      for _ in range(resamples)], confidence=0.90)


@mistake("user_interval",
         hint="The difference is log loss(a) - log loss(b), in that order.")
def b_minus_a(users, labels, probs_a, probs_b, resamples, seed):
    rng = np.random.default_rng(seed)
    return _interval([_difference(labels, probs_b, probs_a, _user_rows(users, rng))
                      for _ in range(resamples)])


@mistake("user_interval",
         hint="A user drawn twice counts twice: keep every row of each draw as often as "
              "the user was drawn, not each drawn user once.")
def each_drawn_user_once(users, labels, probs_a, probs_b, resamples, seed):
    rng = np.random.default_rng(seed)
    ids = np.unique(users)
    values = []
    for _ in range(resamples):
        drawn = np.unique(rng.choice(ids, len(ids)))
        rows = np.flatnonzero(np.isin(users, drawn))
        values.append(_difference(labels, probs_a, probs_b, rows))
    return _interval(values)
