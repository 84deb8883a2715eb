"""Prediction churn: how much the ranking users see changes from one model version to the next.

A model retrained every day changes its scores even where the world did not
change: another seed, another day of data, another batch order. Users see
those changes as ads that jump in and out of the top slots. These measures
compare two versions' scores of the same candidates, request by request
(Milani Fard et al. 2016 call the share of changed decisions *churn*).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import kendalltau

from . import checks


def _check(requests: ArrayLike, old_scores: ArrayLike,
           new_scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    requests = np.asarray(requests)
    old_scores = np.asarray(old_scores, dtype=float)
    new_scores = np.asarray(new_scores, dtype=float)
    if requests.ndim != 1 or old_scores.shape != requests.shape or new_scores.shape != requests.shape:
        raise ValueError("requests, old_scores and new_scores must be 1-d arrays of one length, got "
                         f"{requests.shape}, {old_scores.shape} and {new_scores.shape}")
    if requests.size == 0:
        raise ValueError("no candidates to compare")
    if not (np.isfinite(old_scores).all() and np.isfinite(new_scores).all()):
        raise ValueError("scores must be finite")
    return requests, old_scores, new_scores


def rank_in_request(requests: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each candidate's rank within its request by ``scores``: 0 for the top, ties by position."""
    order = np.lexsort((np.arange(len(scores)), -scores, requests))   # by request, best first
    sorted_requests = requests[order]
    starts = np.r_[0, np.flatnonzero(sorted_requests[1:] != sorted_requests[:-1]) + 1]
    first_of_request = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    ranks = np.empty(len(scores), dtype=int)
    ranks[order] = np.arange(len(order)) - first_of_request
    return ranks


def top_k_flips(requests: ArrayLike, old_scores: ArrayLike, new_scores: ArrayLike,
                k: int = 3) -> float:
    """Share of the top-``k`` slots whose ad changes between the two versions.

    Slot by slot: a request whose first and second ads swap counts two flips
    out of k. Averaged over requests, each request's slots counted up to its
    size. 0: the same ads in the same slots everywhere; 1: all replaced.
    """
    _, flips = flips_per_request(requests, old_scores, new_scores, k)
    return float(np.mean(flips))


def flips_per_request(requests: ArrayLike, old_scores: ArrayLike, new_scores: ArrayLike,
                      k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The requests (sorted ids) and each one's share of top-``k`` slots that flipped."""
    requests, old_scores, new_scores = _check(requests, old_scores, new_scores)
    checks.positive_int("k", k)
    old_rank = rank_in_request(requests, old_scores)
    new_rank = rank_in_request(requests, new_scores)
    shown = old_rank < k                            # the old version's top k
    # the candidate in old slot r: does the new version put it in slot r too?
    flipped = shown & (new_rank != old_rank)
    # each candidate's request numbered 0, 1, 2, ...
    ids, request_index = np.unique(requests, return_inverse=True)
    slots = np.bincount(request_index[shown])               # min(k, size) each
    flips = np.bincount(request_index[shown], weights=flipped[shown].astype(float),
                        minlength=len(slots))
    return ids, flips / slots


def kendall_tau(requests: ArrayLike, old_scores: ArrayLike, new_scores: ArrayLike) -> float:
    """Mean over requests (of 2 or more candidates) of the Kendall rank correlation.

    1: every pair of candidates in the same order; 0: no relation. A request
    whose scores are all tied in one version counts as 1 if tied in both.
    """
    requests, old_scores, new_scores = _check(requests, old_scores, new_scores)
    order = np.argsort(requests, kind="stable")
    bounds = np.flatnonzero(np.diff(requests[order])) + 1
    taus = []
    for rows in np.split(order, bounds):
        if len(rows) < 2:
            continue
        tau = kendalltau(old_scores[rows], new_scores[rows]).statistic
        taus.append(1.0 if np.isnan(tau) else tau)
    if not taus:
        raise ValueError("no request has 2 or more candidates")
    return float(np.mean(taus))


def relative_change(old_scores: ArrayLike, new_scores: ArrayLike) -> float:
    """Mean |new - old| / ((new + old) / 2): how far a probability moves, relative to its size."""
    old_scores = np.asarray(old_scores, dtype=float)
    new_scores = np.asarray(new_scores, dtype=float)
    if old_scores.shape != new_scores.shape or old_scores.size == 0:
        raise ValueError(f"old_scores and new_scores must be non-empty and of one shape, got "
                         f"{old_scores.shape} and {new_scores.shape}")
    if (old_scores <= 0).any() or (new_scores <= 0).any():
        raise ValueError("relative_change needs positive scores (probabilities above 0)")
    return float(np.mean(np.abs(new_scores - old_scores) / ((new_scores + old_scores) / 2)))


def churn_report(requests: ArrayLike, old_scores: ArrayLike, new_scores: ArrayLike,
                 k: int = 3) -> dict[str, float]:
    """The three measures at once: top-k flips, Kendall tau and relative change."""
    return {f"top_{k}_flips": top_k_flips(requests, old_scores, new_scores, k),
            "kendall_tau": kendall_tau(requests, old_scores, new_scores),
            "relative_change": relative_change(old_scores, new_scores)}
