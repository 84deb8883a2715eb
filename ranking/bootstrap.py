"""Intervals without an oracle: the bootstrap over users (and training runs).

On a real log there is no true probability to score a model against, and no
second generator world to rerun it on: there is one test period and its users.
What varies from one test period to the next is which users turn up, so the
interval of a metric (or of the difference between two models) comes from
resampling users: draw as many users as there are, with replacement, keep all
the rows of each draw, recompute, and read the middle 95% of the results.
Both models are scored on the same resample (a *paired* bootstrap), so the
users both find easy or hard cancel out of their difference.

A network trained again with another seed scores differently too. When each
model was trained several times (runs), every resample also draws that many
runs with replacement, so the interval covers the training noise as well.
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


def group_bootstrap(groups: ArrayLike, statistic: Callable[..., float], *,
                    runs: int | None = None, resamples: int = RESAMPLES,
                    confidence: float = CONFIDENCE, seed: int = 0) -> BootstrapInterval:
    """``statistic`` on all rows, and its interval over resamples of ``groups``.

    statistic(rows): rows is an array of row indices (with repeats). With ``runs``
    (R training runs of each model), statistic(rows, runs) also gets R run indices,
    drawn with replacement in each resample (all R, once each, for the estimate).
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) == 0:
        raise ValueError(f"groups must be a non-empty 1-d array, got shape {groups.shape}")
    checks.positive_int("resamples", resamples)
    if runs is not None:
        checks.positive_int("runs", runs)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    _, codes = np.unique(groups, return_inverse=True)              # (N,) in [0, G)
    rng = np.random.default_rng(seed)

    def evaluate(rows: np.ndarray, drawn_runs: np.ndarray | None) -> float:
        return statistic(rows) if runs is None else statistic(rows, drawn_runs)

    values = np.array([
        evaluate(resampled_rows(codes, rng),
                 None if runs is None else rng.integers(0, runs, runs))
        for _ in range(resamples)])
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    every_run = None if runs is None else np.arange(runs)
    return BootstrapInterval(float(evaluate(np.arange(len(groups)), every_run)),
                             float(low), float(high), resamples)


def paired_difference(groups: ArrayLike, labels: ArrayLike, probs_a: ArrayLike,
                      probs_b: ArrayLike, metric: Callable = logloss,
                      **options) -> BootstrapInterval:
    """metric(a) - metric(b) on the same rows, and its interval over users.

    groups: each row's user. probs_a, probs_b: (N,) predictions, or (R, N): one
    row per training run (model seed), the metric averaged over the runs and the
    runs resampled too. For log loss a negative difference means model a is
    better; options go to ``group_bootstrap`` (resamples, confidence, seed).
    """
    a, b = runs_of(labels, probs_a, "probs_a"), runs_of(labels, probs_b, "probs_b")
    if len(a) != len(b):
        raise ValueError(f"probs_a has {len(a)} runs and probs_b {len(b)}: "
                         "train both models with the same seeds")
    y = np.asarray(labels, dtype=np.float64)
    if len(np.asarray(groups)) != len(y):
        raise ValueError(f"groups has {len(np.asarray(groups))} entries "
                         f"for {len(y)} rows")

    def difference(rows: np.ndarray, runs: np.ndarray) -> float:
        return (np.mean([metric(y[rows], a[run][rows]) for run in runs])
                - np.mean([metric(y[rows], b[run][rows]) for run in runs]))

    return group_bootstrap(groups, difference, runs=len(a), **options)


def runs_of(labels: ArrayLike, probs: ArrayLike, name: str = "probs") -> np.ndarray:
    """Checked predictions as (R, N), one row per training run."""
    probs = np.asarray(probs, dtype=np.float64)
    rows = probs[None] if probs.ndim == 1 else probs
    if rows.ndim != 2:
        raise ValueError(f"{name} must be (N,) or (runs, N), got shape {probs.shape}")
    for row in rows:
        checks.labels_and_probabilities(labels, row)
    return rows
