"""Right answers written another way than the solutions': the checks must accept them too.

Each is a plain function named as its exercise's function, a reader's other way to the
right answer (other libraries, dtypes, containers); tests/test_labs.py runs each through
its check and expects the "Correct: ..." line.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import minimize


def historical_ctr_as_array(impressions, key, prior, strength=50.0):
    """A numpy array in the rows' order, from a time-sorted copy."""
    frame = impressions.reset_index(drop=True).sort_values("timestamp", kind="stable")
    per_second = frame.groupby([key, "timestamp"])["click"].agg(["size", "sum"])
    before = per_second.groupby(level=0).cumsum() - per_second
    rows = pd.MultiIndex.from_arrays([impressions[key], impressions["timestamp"]])
    before = before.reindex(rows)
    return ((before["sum"] + strength * prior) / (before["size"] + strength)).to_numpy()


def rounds_to_keep_numpy_int(valid_losses, tolerance=0.0):
    """A numpy integer, not a Python int."""
    losses = np.asarray(valid_losses, dtype=float)
    return np.argmax(losses <= losses.min() + tolerance) + 1


def cross_layer_with_linear(x0, x, weight, bias):
    return x0 * F.linear(x, weight, bias) + x


def mix_experts_einsum(expert_outputs, gate_logits):
    return torch.einsum("be,beh->bh", torch.softmax(gate_logits, dim=1), expert_outputs)


def delta_buckets_int32(delta_hours, n_buckets):
    return torch.log2(1 + delta_hours).floor().clamp(max=n_buckets - 1).to(torch.int32)


def interval_sum_pool_bucketize(events, mask, delta_hours, bounds):
    """Each event's interval from torch.bucketize, then one sum per interval."""
    interval = torch.bucketize(delta_hours, torch.tensor(bounds), right=True)   # (B, L)
    one_hot = F.one_hot(interval, len(bounds) + 1) * mask.unsqueeze(-1)         # (B, L, K)
    return torch.einsum("blk,bld->bkd", one_hot.to(events.dtype), events).flatten(1)


def masked_softmax_in_float32(scores, mask):
    """-inf on padding in float32, NaN of empty rows set to 0, back to the scores' dtype."""
    weights = torch.softmax(scores.float().masked_fill(~mask, float("-inf")), dim=-1)
    return weights.nan_to_num(0.0).to(scores.dtype)


def quantile_ece_by_bin(labels, probs, n_bins):
    """A loop over the bins, bin k holding edges[k] < p <= edges[k + 1]."""
    y, p = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    total = 0.0
    for k in range(n_bins):
        rows = (p <= edges[k + 1]) & ((p > edges[k]) if k else True)
        if rows.any():
            total += rows.sum() / len(p) * abs(y[rows].mean() - p[rows].mean())
    return total


def platt_scale_with_scipy(probs, labels, steps=50):
    p = np.clip(np.asarray(probs, dtype=float), 1e-7, 1 - 1e-7)
    x, y = np.log(p / (1 - p)), np.asarray(labels, dtype=float)

    def loss(pair):
        z = pair[0] * x + pair[1]
        return np.mean(np.logaddexp(0, z) - y * z)
    fit = minimize(loss, [1.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    return tuple(fit.x)


def fake_negative_correction_as_list(stream_probs):
    return [b / (1 - b) for b in stream_probs]


def choose_precision_with_map(largest, safety=10.0):
    return largest.map(lambda value: "fp16" if value * safety <= 65504 else "bf16")


def resilient_update_in_float64(running_mean, running_var, batch, momentum=0.1,
                                minimal_variance=1e-4, variance_shift_threshold=10.0):
    batch = batch.double()
    mean, var = running_mean.double(), running_var.double()
    batch_var = batch.var(dim=0)
    ratio = batch_var / var
    mask = ((batch_var < minimal_variance) | (ratio > variance_shift_threshold)
            | (ratio * variance_shift_threshold < 1))
    keep = torch.where(mask, 0.0, momentum)
    return (mean + keep * (batch.mean(dim=0) - mean), var + keep * (batch_var - var), mask)


def masked_variance_with_maximum(running_var, batch_var, mask):
    """The larger variance for masked columns, written with maximum on a float64 copy."""
    larger = torch.maximum(running_var.double(), batch_var.double())
    return torch.where(mask, larger, running_var.double())


def distillation_loss_softplus_float64(logits, labels, teacher_probs, weight):
    """log loss = softplus(z) - y z, in float64."""
    z = logits.double()
    label_loss = (F.softplus(z) - labels * z).mean()
    return label_loss + weight * (F.softplus(z) - teacher_probs * z).mean()


def top_k_flips_pandas_rank(requests, old_scores, new_scores, k=3):
    """Ranks within each request by pandas, ties to the earlier row (method="first")."""
    frame = pd.DataFrame({"request": requests, "old": old_scores, "new": new_scores})
    shares = []
    for _, group in frame.groupby("request"):
        old_rank = group["old"].rank(method="first", ascending=False)
        new_rank = group["new"].rank(method="first", ascending=False)
        slots = range(1, min(k, len(group)) + 1)
        flips = [(old_rank == slot).idxmax() != (new_rank == slot).idxmax() for slot in slots]
        shares.append(np.mean(flips))
    return float(np.mean(shares))


def shard_rows_as_list(n_rows, rank, world_size):
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad rank {rank} or world_size {world_size}")
    return list(range(rank, n_rows, world_size))


def piecewise_linear_encoding_with_where(values, edges):
    """Each bin's share written with torch.where and explicit bounds, in float64."""
    x, e = values.double()[:, None], edges.double()
    t = (x - e[:-1]) / (e[1:] - e[:-1])                       # (N, R)
    r = torch.arange(t.shape[1])
    low = torch.where(r == 0, -torch.inf, 0.0)
    high = torch.where(r == t.shape[1] - 1, torch.inf, 1.0)
    return torch.minimum(torch.maximum(t, low), high).float()


def top_slot_value_by_lexsort(scores, requests, truth, values, k):
    """The kept slots found with one lexsort: by request, then by score, highest first."""
    order = np.lexsort((-scores, requests))
    sorted_requests = requests[order]
    first = np.r_[True, sorted_requests[1:] != sorted_requests[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    kept = np.zeros(len(scores), dtype=bool)
    kept[order[np.arange(len(order)) - start < k]] = True
    return sum(value * 1000 * truth[action][kept].mean() for action, value in values.items())

def ratings_before_as_a_list(frame, key):
    """A plain list, counted by comparing each row with every row of its key."""
    counts = []
    for value, time in zip(frame[key], frame["timestamp"]):
        same_key = frame[frame[key] == value]
        counts.append(int((same_key["timestamp"] < time).sum()))
    return counts


def user_interval_by_weights(users, labels, probs_a, probs_b, resamples, seed):
    """Each resample as a weight per user (how often it was drawn), a weighted mean of
    the per-row log losses: the same statistic as repeating the rows."""
    rng = np.random.default_rng(seed + 1)
    ids, codes = np.unique(users, return_inverse=True)
    clipped_a, clipped_b = np.clip(probs_a, 1e-7, 1 - 1e-7), np.clip(probs_b, 1e-7, 1 - 1e-7)
    loss_a = -(labels * np.log(clipped_a) + (1 - labels) * np.log(1 - clipped_a))
    loss_b = -(labels * np.log(clipped_b) + (1 - labels) * np.log(1 - clipped_b))
    differences = []
    for _ in range(resamples):
        weight = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))[codes]
        differences.append(np.sum(weight * (loss_a - loss_b)) / np.sum(weight))
    return tuple(np.quantile(differences, [0.025, 0.975]))


RIGHT_ANSWERS: dict[str, list[Callable]] = {
    "historical_ctr": [historical_ctr_as_array],
    "rounds_to_keep": [rounds_to_keep_numpy_int],
    "cross_layer": [cross_layer_with_linear],
    "mix_experts": [mix_experts_einsum],
    "delta_buckets": [delta_buckets_int32],
    "interval_sum_pool": [interval_sum_pool_bucketize],
    "masked_softmax": [masked_softmax_in_float32],
    "quantile_ece": [quantile_ece_by_bin],
    "platt_scale": [platt_scale_with_scipy],
    "fake_negative_correction": [fake_negative_correction_as_list],
    "choose_precision": [choose_precision_with_map],
    "resilient_update": [resilient_update_in_float64],
    "masked_variance": [masked_variance_with_maximum],
    "distillation_loss": [distillation_loss_softplus_float64],
    "top_k_flips": [top_k_flips_pandas_rank],
    "shard_rows": [shard_rows_as_list],
    "piecewise_linear_encoding": [piecewise_linear_encoding_with_where],
    "top_slot_value": [top_slot_value_by_lexsort],
    "ratings_before": [ratings_before_as_a_list],
    "user_interval": [user_interval_by_weights],
}
