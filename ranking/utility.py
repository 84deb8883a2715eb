"""Utility-weighted ranking: one score from several calibrated action probabilities.

A feed ranks candidates by what showing each one is worth, and "worth" has
several parts: a click, a save, a hide (which costs), a conversion. With one
calibrated probability per action the score is a weighted sum,

    utility = sum over actions t of weight_t * P(t),

and the weights are the product's dials: raising the weight of saves shifts
the top slots toward items people save (videos, on this log). The sum only
means something if each P(t) is a real probability: a head that is twice too
high would silently double its action's weight.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import checks


def utility(probs: Mapping[str, np.ndarray],
            weights: Mapping[str, float]) -> np.ndarray:
    """sum_t weights[t] * probs[t], per candidate.

    Every weighted action needs its probabilities.
    """
    if not weights:
        raise ValueError("weights is empty: name at least one action")
    missing = sorted(set(weights) - set(probs))
    if missing:
        raise ValueError(f"no probabilities for weighted action(s) {missing}; "
                         f"have {sorted(probs)}")
    columns = [np.asarray(probs[action], dtype=float) for action in weights]
    sizes = {len(column) for column in columns}
    if len(sizes) != 1:
        raise ValueError("the actions' probability arrays differ in length: "
                         f"{sorted(sizes)}")
    return sum(weight * column for weight, column in zip(weights.values(), columns))


def feed_requests(frame: pd.DataFrame, surface: str = "home_feed",
                  min_candidates: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Each impression's request, and which impressions form a request to rank.

    A request is one user's impressions on one day (id user * 1,000 + day).
    The mask keeps the impressions on ``surface`` whose request there holds at
    least ``min_candidates`` of them: fewer leave little to rank.
    """
    checks.positive_int("min_candidates", min_candidates)
    on_surface = (frame["surface"] == surface).to_numpy()
    if not on_surface.any():
        raise ValueError(f"no impression on surface {surface!r}")
    day = frame["timestamp"].to_numpy() // 86_400
    request = frame["user_id"].to_numpy() * 1_000 + day
    sizes = pd.Series(request[on_surface]).value_counts()
    big_enough = sizes[sizes >= min_candidates].index
    return request, on_surface & np.isin(request, big_enough)


def top_slots(scores: np.ndarray, requests: np.ndarray, k: int) -> np.ndarray:
    """A boolean mask of the candidates ranked in the top ``k`` of their request by ``scores``.

    Ties are broken by position, so exactly min(k, request size) candidates
    of each request are kept.
    """
    scores, requests = np.asarray(scores, dtype=float), np.asarray(requests)
    if scores.shape != requests.shape or scores.ndim != 1:
        raise ValueError(f"scores and requests must be 1-d of the same length, got {scores.shape} "
                         f"and {requests.shape}")
    checks.positive_int("k", k)
    frame = pd.DataFrame({"request": requests, "score": scores})
    rank = frame.groupby("request", sort=False)["score"].rank(method="first", ascending=False)
    return (rank <= k).to_numpy()


def top_slot_share(scores: np.ndarray, requests: np.ndarray, flag: np.ndarray, k: int) -> float:
    """Share of the top-``k`` slots (over all requests) that go to candidates with ``flag`` set."""
    flag = np.asarray(flag, dtype=bool)
    shown = top_slots(scores, requests, k)
    if flag.shape != shown.shape:
        raise ValueError(f"flag must have one entry per candidate, got {flag.shape} for {shown.shape}")
    return float(flag[shown].mean())
