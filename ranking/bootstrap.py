"""Intervals without an oracle: the bootstrap over users.

On a real log there is no true probability to score a model against, and no
second generator world to rerun it on: there is one test period and its users.
What varies from one test period to the next is which users turn up, so the
interval of a metric (or of the difference between two models) comes from
resampling users: draw as many users as there are, with replacement, keep all
the rows of each draw, recompute, and read the middle 95% of the results.
Both models are scored on the same resample (a *paired* bootstrap), so the
users both find easy or hard cancel out of their difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import checks
from .metrics import logloss

RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class BootstrapInterval:
    """A statistic on the data as it is, and its percentile interval over resamples."""

    estimate: float
    low: float
    high: float
    resamples: int


def resampled_rows(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The row indices of one resample. codes: each row's group as 0..G-1; G groups
    are drawn with replacement, every row repeated as often as its group was drawn."""
    n_groups = int(codes.max()) + 1
    draws = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
    return np.repeat(np.arange(len(codes)), draws[codes])


def group_bootstrap(groups: ArrayLike, statistic: Callable[[np.ndarray], float], *,
                    resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                    seed: int = 0) -> BootstrapInterval:
    """``statistic(rows)`` on all rows, and its interval over resamples of ``groups``.

    statistic: takes an array of row indices (with repeats) and returns a number.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise ValueError(f"groups must be a non-empty 1-d array, got shape {groups.shape}")
    checks.positive_int("resamples", resamples)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    _, codes = np.unique(groups, return_inverse=True)              # (N,) in [0, G)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(resampled_rows(codes, rng)) for _ in range(resamples)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return BootstrapInterval(float(statistic(np.arange(len(groups)))), float(low),
                             float(high), resamples)


def paired_difference(groups: ArrayLike, labels: ArrayLike, probs_a: ArrayLike,
                      probs_b: ArrayLike, metric: Callable = logloss,
                      **options) -> BootstrapInterval:
    """metric(a) - metric(b) on the same rows, with its interval over users (``groups``).

    probs_a, probs_b: (N,) predictions, or (S, N): one row per model seed, when
    the difference is averaged over the seeds. For log loss a negative difference
    means model a is better; options go to ``group_bootstrap``.
    """
    a, b = _per_seed(labels, probs_a, "probs_a"), _per_seed(labels, probs_b, "probs_b")
    y = np.asarray(labels)
    if len(np.asarray(groups)) != len(y):
        raise ValueError(f"groups has {len(np.asarray(groups))} entries for {len(y)} rows")

    def difference(rows: np.ndarray) -> float:
        return (np.mean([metric(y[rows], p[rows]) for p in a])
                - np.mean([metric(y[rows], p[rows]) for p in b]))

    return group_bootstrap(groups, difference, **options)


def _per_seed(labels: ArrayLike, probs: ArrayLike, name: str) -> list[np.ndarray]:
    """Checked predictions, one (N,) array per model seed."""
    probs = np.asarray(probs, dtype=np.float64)
    rows = probs[None] if probs.ndim == 1 else probs
    if rows.ndim != 2:
        raise ValueError(f"{name} must be (N,) or (seeds, N), got shape {probs.shape}")
    return [checks.labels_and_probabilities(labels, row)[1] for row in rows]
