"""Known mistakes of lab 10, the whole ranker (labs/10_whole_ranker.ipynb).

Exercises: ``piecewise_linear_encoding`` and ``top_slot_value``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..common import mistake


# ------------------------------------------------------- piecewise-linear encoding
def _fractions(values, edges):
    left, width = edges[:-1], edges[1:] - edges[:-1]
    return (values[:, None] - left) / width                              # (N, R)


@mistake("piecewise_linear_encoding",
         hint="Do not clamp the first bin below 0 nor the last above 1: values outside the "
              "training range must still move the encoding.")
def clamps_every_bin(values, edges):
    return _fractions(values, edges).clamp(0, 1)


@mistake("piecewise_linear_encoding",
         hint="Entry r is how far x has come through bin r, a fraction between 0 and 1 "
              "inside the bin, not a 0/1 flag of the bin x falls in.")
def one_hot_bins(values, edges):
    t = _fractions(values, edges)
    return ((t >= 0) & (t < 1)).float()


@mistake("piecewise_linear_encoding",
         hint="Divide by the width of bin r, edges[r + 1] - edges[r], not by the width of "
              "all the bins.")
def divides_by_the_whole_range(values, edges):
    t = (values[:, None] - edges[:-1]) / (edges[-1] - edges[0])
    return torch.cat([t[:, :1].clamp(max=1), t[:, 1:-1].clamp(0, 1), t[:, -1:].clamp(min=0)],
                     dim=1) if t.shape[1] > 1 else t


@mistake("piecewise_linear_encoding",
         hint="Bins that x has passed are full (1), and bins ahead of it empty (0): clamp "
              "the inner bins to [0, 1].")
def no_clamp_at_all(values, edges):
    return _fractions(values, edges)


# ---------------------------------------------------------------- top-slot value
def _value(truth, values, kept):
    return sum(weight * 1000.0 * truth[action][kept].mean()
               for action, weight in values.items())


def _kept(scores, requests, k, ascending=False):
    rank = pd.Series(scores).groupby(requests).rank(method="first", ascending=ascending)
    return (rank <= k).to_numpy()


@mistake("top_slot_value",
         hint="Keep the k best candidates of EACH request, not the k best rows overall.")
def top_k_overall(scores, requests, truth, values, k):
    kept = np.zeros(len(scores), dtype=bool)
    kept[np.argsort(-scores)[:k]] = True
    return _value(truth, values, kept)


@mistake("top_slot_value",
         hint="The top slots go to the HIGHEST scores: rank from the highest down.")
def lowest_scores(scores, requests, truth, values, k):
    return _value(truth, values, _kept(scores, requests, k, ascending=True))


@mistake("top_slot_value",
         hint="Rank by the model's scores: the truth only scores the slots once they are "
              "filled (ranking by it is the oracle's blend, not the model's).")
def ranks_by_the_truth(scores, requests, truth, values, k):
    oracle = sum(weight * truth[action] for action, weight in values.items())
    return _value(truth, values, _kept(oracle, requests, k))


@mistake("top_slot_value",
         hint="Per 1,000 slots: take the mean over the kept slots times 1,000, not the sum.")
def sums_the_slots(scores, requests, truth, values, k):
    kept = _kept(scores, requests, k)
    return sum(weight * truth[action][kept].sum() for action, weight in values.items())


@mistake("top_slot_value", hint="Multiply each action's mean by 1,000 (slots) and by its value.")
def forgets_the_values(scores, requests, truth, values, k):
    kept = _kept(scores, requests, k)
    return sum(1000.0 * truth[action][kept].mean() for action in values)
