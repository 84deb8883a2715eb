"""The labs: student notebooks are generated, and every check tells right from wrong.

For each solution notebook in labs/solutions/ these tests

1. regenerate the student notebook and compare it with the committed one;
2. run the solution notebook's cells in order (at the scale of RANKING_SCALE,
   smoke in `make test`), and at every ``labcheck.check_*(function, *args)`` call
   capture the arguments; then assert that the check
   - rejects the exercise's stub taken from the STUDENT notebook ("not implemented yet"),
   - rejects every planted wrong answer listed in WRONG_ANSWERS below,
   - accepts the function from the SOLUTION notebook.

A new lab needs no new test code: add its planted wrong answers to WRONG_ANSWERS
(a test fails until every exercise has at least one).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ranking import labcheck

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "labs" / "solutions").glob("*.ipynb"))
LABS = [path.stem for path in SOLUTIONS]


def _load_make_student():
    spec = importlib.util.spec_from_file_location("make_student", ROOT / "tools" / "make_student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_student = _load_make_student()


# ------------------------------------------------------------------ planted wrong answers
# (lab, exercise function) -> {what is wrong: source defining the function}.
# Each source runs in the lab's namespace (its imports and data are available).
WRONG_ANSWERS: dict[tuple[str, str], dict[str, str]] = {
    ("01_ad_log", "normalized_entropy"): {
        "plain log loss, not divided by the base entropy": """
            def normalized_entropy(labels, probs):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        """,
        "base rate taken from the predictions": """
            def normalized_entropy(labels, probs):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
                r = p.mean()
                return float(ll / -(r * np.log(r) + (1 - r) * np.log(1 - r)))
        """,
        "summed instead of averaged log loss": """
            def normalized_entropy(labels, probs):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                ll = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
                r = y.mean()
                return float(ll / -(r * np.log(r) + (1 - r) * np.log(1 - r)))
        """,
        "log loss without the negative-class term": """
            def normalized_entropy(labels, probs):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                ll = -np.mean(y * np.log(p))
                r = y.mean()
                return float(ll / -(r * np.log(r) + (1 - r) * np.log(1 - r)))
        """,
    },
    ("01_ad_log", "highest_ctr_surface"): {
        "lowest CTR": """
            def highest_ctr_surface(impressions):
                return str(impressions.groupby("surface", observed=True)["click"].mean().idxmin())
        """,
        "most clicks rather than highest rate": """
            def highest_ctr_surface(impressions):
                return str(impressions.groupby("surface", observed=True)["click"].sum().idxmax())
        """,
        "hard-coded answer of the lab's log": """
            _answer = str(impressions.groupby("surface", observed=True)["click"].mean().idxmax())
            def highest_ctr_surface(impressions):
                return _answer
        """,
        "returns the pandas label list, not a str": """
            def highest_ctr_surface(impressions):
                ctr = impressions.groupby("surface", observed=True)["click"].mean()
                return list(ctr[ctr == ctr.max()].index)
        """,
    },
    ("01_ad_log", "missed_conversion_share"): {
        "share observed in time (<= instead of >)": """
            def missed_conversion_share(impressions, cutoff_hours=24.0):
                c = impressions[(impressions["click"] == 1) & (impressions["conversion"] == 1)]
                return float(((c["conversion_timestamp"] - c["timestamp"]) <= cutoff_hours * 3600).mean())
        """,
        "hours compared with seconds": """
            def missed_conversion_share(impressions, cutoff_hours=24.0):
                c = impressions[(impressions["click"] == 1) & (impressions["conversion"] == 1)]
                return float(((c["conversion_timestamp"] - c["timestamp"]) > cutoff_hours).mean())
        """,
        "cutoff argument ignored (always 24 h)": """
            def missed_conversion_share(impressions, cutoff_hours=24.0):
                c = impressions[(impressions["click"] == 1) & (impressions["conversion"] == 1)]
                return float(((c["conversion_timestamp"] - c["timestamp"]) > 24 * 3600).mean())
        """,
        "divided by clicks instead of conversions": """
            def missed_conversion_share(impressions, cutoff_hours=24.0):
                clicked = impressions[impressions["click"] == 1]
                late = (clicked["conversion_timestamp"] - clicked["timestamp"]) > cutoff_hours * 3600
                return float(late.sum() / len(clicked))
        """,
        "a percentage instead of a share": """
            def missed_conversion_share(impressions, cutoff_hours=24.0):
                c = impressions[(impressions["click"] == 1) & (impressions["conversion"] == 1)]
                return 100 * float(((c["conversion_timestamp"] - c["timestamp"]) > cutoff_hours * 3600).mean())
        """,
    },
    ("02_gbdt", "historical_ctr"): {
        "the row's own click counts (leak)": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                frame = impressions.sort_values("timestamp", kind="stable")
                clicks = frame.groupby(key)["click"].cumsum()
                seen = frame.groupby(key).cumcount() + 1
                return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)
        """,
        "rows of the same second count": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                frame = impressions.sort_values("timestamp", kind="stable")
                clicks = frame.groupby(key)["click"].cumsum() - frame["click"]
                seen = frame.groupby(key).cumcount()
                return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)
        """,
        "no smoothing": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                per_second = impressions.groupby([key, "timestamp"])["click"].agg(["size", "sum"])
                before = per_second.groupby(level=0).cumsum() - per_second
                before = before.reindex(pd.MultiIndex.from_arrays([impressions[key], impressions["timestamp"]]))
                seen, clicks = before["size"].to_numpy(), before["sum"].to_numpy()
                return np.where(seen > 0, clicks / np.maximum(seen, 1), prior)
        """,
        "ordered by impression_id instead of time": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                frame = impressions.sort_values("impression_id")
                clicks = frame.groupby(key)["click"].cumsum() - frame["click"]
                seen = frame.groupby(key).cumcount()
                return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)
        """,
        "answers left in time order, not row order": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                frame = impressions.sort_values("timestamp", kind="stable")
                per_second = frame.groupby([key, "timestamp"])["click"].agg(["size", "sum"])
                before = per_second.groupby(level=0).cumsum() - per_second
                before = before.reindex(pd.MultiIndex.from_arrays([frame[key], frame["timestamp"]]))
                return (before["sum"].to_numpy() + strength * prior) / (before["size"].to_numpy() + strength)
        """,
        "whole-log click rate per key": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                return impressions.groupby(key)["click"].transform("mean").to_numpy()
        """,
        "prior ignored (the frame's own click rate)": """
            def historical_ctr(impressions, key, prior, strength=50.0):
                prior = impressions["click"].mean()
                per_second = impressions.groupby([key, "timestamp"])["click"].agg(["size", "sum"])
                before = per_second.groupby(level=0).cumsum() - per_second
                before = before.reindex(pd.MultiIndex.from_arrays([impressions[key], impressions["timestamp"]]))
                return (before["sum"].to_numpy() + strength * prior) / (before["size"].to_numpy() + strength)
        """,
    },
    ("02_gbdt", "gap_closed"): {
        "share of the gap still open": """
            def gap_closed(labels, probs, oracle_probs, base_rate):
                y = np.asarray(labels, float)
                ll = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - np.asarray(p, float)))
                base = ll(np.full(y.size, base_rate))
                return float((ll(probs) - ll(oracle_probs)) / (base - ll(oracle_probs)))
        """,
        "base rate taken from the labels": """
            def gap_closed(labels, probs, oracle_probs, base_rate):
                y = np.asarray(labels, float)
                ll = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - np.asarray(p, float)))
                base = ll(np.full(y.size, y.mean()))
                return float((base - ll(probs)) / (base - ll(oracle_probs)))
        """,
        "a percentage instead of a share": """
            def gap_closed(labels, probs, oracle_probs, base_rate):
                y = np.asarray(labels, float)
                ll = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - np.asarray(p, float)))
                base = ll(np.full(y.size, base_rate))
                return float(100 * (base - ll(probs)) / (base - ll(oracle_probs)))
        """,
        "normalized entropy instead": """
            def gap_closed(labels, probs, oracle_probs, base_rate):
                y = np.asarray(labels, float)
                ll = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - np.asarray(p, float)))
                return float(ll(probs) / ll(np.full(y.size, y.mean())))
        """,
        "clipped at 0 (a model worse than the base rate is not 0)": """
            def gap_closed(labels, probs, oracle_probs, base_rate):
                y = np.asarray(labels, float)
                ll = lambda p: -np.mean(y * np.log(p) + (1 - y) * np.log(1 - np.asarray(p, float)))
                base = ll(np.full(y.size, base_rate))
                return float(max(0.0, (base - ll(probs)) / (base - ll(oracle_probs))))
        """,
    },
    ("02_gbdt", "rounds_to_keep"): {
        "0-based position of the lowest loss": """
            def rounds_to_keep(valid_losses, tolerance=0.0):
                return int(np.argmin(np.asarray(valid_losses, float)))
        """,
        "idxmin of whatever index the Series has": """
            def rounds_to_keep(valid_losses, tolerance=0.0):
                return int(pd.Series(valid_losses).idxmin())
        """,
        "tolerance ignored": """
            def rounds_to_keep(valid_losses, tolerance=0.0):
                return int(np.argmin(np.asarray(valid_losses, float))) + 1
        """,
        "last round within tolerance instead of the first": """
            def rounds_to_keep(valid_losses, tolerance=0.0):
                losses = np.asarray(valid_losses, float)
                return int(np.flatnonzero(losses <= losses.min() + tolerance)[-1]) + 1
        """,
        "all the rounds": """
            def rounds_to_keep(valid_losses, tolerance=0.0):
                return len(valid_losses)
        """,
    },
    ("03_deep_model", "cross_layer"): {
        "no residual": """
            def cross_layer(x0, x, weight, bias):
                return x0 * (x @ weight.T + bias)
        """,
        "multiplied by x instead of x0": """
            def cross_layer(x0, x, weight, bias):
                return x * (x @ weight.T + bias) + x
        """,
        "weight not transposed": """
            def cross_layer(x0, x, weight, bias):
                return x0 * (x @ weight + bias) + x
        """,
        "bias left out": """
            def cross_layer(x0, x, weight, bias):
                return x0 * (x @ weight.T) + x
        """,
        "residual of x0 instead of x": """
            def cross_layer(x0, x, weight, bias):
                return x0 * (x @ weight.T + bias) + x0
        """,
        "a matrix product with x0 instead of an elementwise one": """
            def cross_layer(x0, x, weight, bias):
                return x0 @ (x @ weight.T + bias).T @ x0 / x0.shape[0] + x
        """,
        "changes x in place": """
            def cross_layer(x0, x, weight, bias):
                x += x0 * (x @ weight.T + bias)
                return x
        """,
    },
    ("04_multitask", "mix_experts"): {
        "softmax over the rows instead of the experts": """
            def mix_experts(expert_outputs, gate_logits):
                return (torch.softmax(gate_logits, dim=0).unsqueeze(-1) * expert_outputs).sum(dim=1)
        """,
        "raw logits as weights": """
            def mix_experts(expert_outputs, gate_logits):
                return (gate_logits.unsqueeze(-1) * expert_outputs).sum(dim=1)
        """,
        "plain average of the experts": """
            def mix_experts(expert_outputs, gate_logits):
                return expert_outputs.mean(dim=1)
        """,
        "weighted mean instead of weighted sum": """
            def mix_experts(expert_outputs, gate_logits):
                return (torch.softmax(gate_logits, dim=1).unsqueeze(-1) * expert_outputs).mean(dim=1)
        """,
        "sigmoid gates": """
            def mix_experts(expert_outputs, gate_logits):
                return (torch.sigmoid(gate_logits).unsqueeze(-1) * expert_outputs).sum(dim=1)
        """,
        "hand-written softmax that overflows": """
            def mix_experts(expert_outputs, gate_logits):
                weights = torch.exp(gate_logits) / torch.exp(gate_logits).sum(dim=1, keepdim=True)
                return (weights.unsqueeze(-1) * expert_outputs).sum(dim=1)
        """,
    },
    ("04_multitask", "weight_for_share"): {
        "a coarse grid of whole weights": """
            def weight_for_share(share_at, target):
                for weight in range(21):
                    if share_at(weight) >= target:
                        return float(weight)
                return 20.0
        """,
        "the largest weight, not the smallest": """
            def weight_for_share(share_at, target):
                return 20.0
        """,
        "bisection that returns the side below the target": """
            def weight_for_share(share_at, target):
                low, high = 0.0, 20.0
                while high - low > 0.005:
                    middle = (low + high) / 2
                    if share_at(middle) >= target:
                        high = middle
                    else:
                        low = middle
                return low
        """,
        "returns the share, not the weight": """
            def weight_for_share(share_at, target):
                low, high = 0.0, 20.0
                while high - low > 0.005:
                    middle = (low + high) / 2
                    if share_at(middle) >= target:
                        high = middle
                    else:
                        low = middle
                return share_at(high)
        """,
    },
    ("05_multitower", "route_to_tower"): {
        "tower 0 for every row": """
            def route_to_tower(tower_logits, surface):
                return tower_logits[:, 0]
        """,
        "mean of the towers": """
            def route_to_tower(tower_logits, surface):
                return tower_logits.mean(dim=1)
        """,
        "largest tower output": """
            def route_to_tower(tower_logits, surface):
                return tower_logits.max(dim=1).values
        """,
        "indexes rows instead of columns": """
            def route_to_tower(tower_logits, surface):
                return tower_logits[surface]
        """,
        "surface codes shifted by one": """
            def route_to_tower(tower_logits, surface):
                return tower_logits.gather(1, ((surface + 1) % tower_logits.shape[1]).unsqueeze(1)).squeeze(1)
        """,
    },
    ("05_multitower", "surface_gaps"): {
        "one pooled base rate for every surface": """
            def surface_gaps(probs, oracle, surface, priors):
                pooled = float(np.mean(list(priors.values())))
                def loss(p, q):
                    q = np.clip(q, 1e-7, 1 - 1e-7)
                    return -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q))
                gaps = {}
                for code in priors:
                    rows = surface == code
                    base = loss(oracle[rows], np.full(rows.sum(), pooled))
                    gaps[code] = (base - loss(oracle[rows], probs[rows])) / (base - loss(oracle[rows], oracle[rows]))
                return gaps
        """,
        "share of the gap still open": """
            def surface_gaps(probs, oracle, surface, priors):
                def loss(p, q):
                    q = np.clip(q, 1e-7, 1 - 1e-7)
                    return -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q))
                gaps = {}
                for code, prior in priors.items():
                    rows = surface == code
                    base = loss(oracle[rows], np.full(rows.sum(), prior))
                    gaps[code] = (loss(oracle[rows], probs[rows]) - loss(oracle[rows], oracle[rows])) / (
                        base - loss(oracle[rows], oracle[rows]))
                return gaps
        """,
        "all rows instead of the surface's rows": """
            def surface_gaps(probs, oracle, surface, priors):
                def loss(p, q):
                    q = np.clip(q, 1e-7, 1 - 1e-7)
                    return -np.mean(p * np.log(q) + (1 - p) * np.log(1 - q))
                gaps = {}
                for code, prior in priors.items():
                    base = loss(oracle, np.full(len(oracle), prior))
                    gaps[code] = (base - loss(oracle, probs)) / (base - loss(oracle, oracle))
                return gaps
        """,
        "log loss without the negative-class term": """
            def surface_gaps(probs, oracle, surface, priors):
                def loss(p, q):
                    q = np.clip(q, 1e-7, 1 - 1e-7)
                    return -np.mean(p * np.log(q))
                gaps = {}
                for code, prior in priors.items():
                    rows = surface == code
                    base = loss(oracle[rows], np.full(rows.sum(), prior))
                    gaps[code] = (base - loss(oracle[rows], probs[rows])) / (base - loss(oracle[rows], oracle[rows]))
                return gaps
        """,
    },
    ("03_deep_model", "log_clip_standardize"): {
        "statistics from the values being transformed (leak)": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                logs = np.log1p(np.asarray(values, dtype=float))
                low, high = np.quantile(logs, [1 - quantile, quantile])
                clipped = np.clip(logs, low, high)
                return (clipped - clipped.mean()) / clipped.std()
        """,
        "no log1p": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train = np.asarray(train_values, dtype=float)
                low, high = np.quantile(train, [1 - quantile, quantile])
                clipped_train = np.clip(train, low, high)
                clipped = np.clip(np.asarray(values, dtype=float), low, high)
                return (clipped - clipped_train.mean()) / clipped_train.std()
        """,
        "no clipping": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train_logs = np.log1p(np.asarray(train_values, dtype=float))
                logs = np.log1p(np.asarray(values, dtype=float))
                return (logs - train_logs.mean()) / train_logs.std()
        """,
        "mean and std of the unclipped training logs": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train_logs = np.log1p(np.asarray(train_values, dtype=float))
                low, high = np.quantile(train_logs, [1 - quantile, quantile])
                clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
                return (clipped - train_logs.mean()) / train_logs.std()
        """,
        "pandas std (ddof=1)": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train_logs = pd.Series(np.log1p(np.asarray(train_values, dtype=float)))
                low, high = train_logs.quantile(1 - quantile), train_logs.quantile(quantile)
                clipped_train = train_logs.clip(low, high)
                clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
                return (clipped - clipped_train.mean()) / clipped_train.std()
        """,
        "min-max scaling instead of standardizing": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train_logs = np.log1p(np.asarray(train_values, dtype=float))
                low, high = np.quantile(train_logs, [1 - quantile, quantile])
                clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
                return (clipped - low) / (high - low)
        """,
        "quantile argument ignored (always 0.99)": """
            def log_clip_standardize(train_values, values, quantile=0.99):
                train_logs = np.log1p(np.asarray(train_values, dtype=float))
                low, high = np.quantile(train_logs, [0.01, 0.99])
                clipped_train = np.clip(train_logs, low, high)
                clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
                return (clipped - clipped_train.mean()) / clipped_train.std()
        """,
    },
    ("06_sequences", "delta_buckets"): {
        "log2 of the hours, without the 1 +": """
            def delta_buckets(delta_hours, n_buckets):
                return torch.log2(delta_hours).floor().clamp(0, n_buckets - 1).long()
        """,
        "not capped": """
            def delta_buckets(delta_hours, n_buckets):
                return torch.log2(1 + delta_hours).floor().long()
        """,
        "rounded instead of floored": """
            def delta_buckets(delta_hours, n_buckets):
                return torch.log2(1 + delta_hours).round().long().clamp(max=n_buckets - 1)
        """,
        "float buckets": """
            def delta_buckets(delta_hours, n_buckets):
                return torch.log2(1 + delta_hours).floor().clamp(max=n_buckets - 1)
        """,
    },
    ("06_sequences", "interval_sum_pool"): {
        "padding counted": """
            def interval_sum_pool(events, mask, delta_hours, bounds):
                edges = [0.0, *bounds, float("inf")]
                return torch.cat([(events * ((delta_hours >= lo) & (delta_hours < hi)).unsqueeze(-1)).sum(1)
                                  for lo, hi in zip(edges[:-1], edges[1:])], dim=1)
        """,
        "events on a bound in the earlier interval": """
            def interval_sum_pool(events, mask, delta_hours, bounds):
                edges = [-1.0, *bounds, float("inf")]
                return torch.cat([(events * (mask & (delta_hours > lo) & (delta_hours <= hi)).unsqueeze(-1)).sum(1)
                                  for lo, hi in zip(edges[:-1], edges[1:])], dim=1)
        """,
        "one sum over every interval": """
            def interval_sum_pool(events, mask, delta_hours, bounds):
                total = (events * mask.unsqueeze(-1)).sum(1)
                return torch.cat([total] * (len(bounds) + 1), dim=1)
        """,
        "oldest interval first": """
            def interval_sum_pool(events, mask, delta_hours, bounds):
                edges = [0.0, *bounds, float("inf")]
                sums = [(events * (mask & (delta_hours >= lo) & (delta_hours < hi)).unsqueeze(-1)).sum(1)
                        for lo, hi in zip(edges[:-1], edges[1:])]
                return torch.cat(sums[::-1], dim=1)
        """,
    },
    ("06_sequences", "masked_softmax"): {
        "masked_fill with -1e9 (overflows fp16)": """
            def masked_softmax(scores, mask):
                return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1) * mask
        """,
        "-inf: NaN for a user without events": """
            def masked_softmax(scores, mask):
                return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        """,
        "no mask": """
            def masked_softmax(scores, mask):
                return torch.softmax(scores, dim=-1)
        """,
        "mask applied after the softmax only": """
            def masked_softmax(scores, mask):
                return torch.softmax(scores, dim=-1) * mask
        """,
        "uniform weights on an empty row": """
            def masked_softmax(scores, mask):
                lowest = torch.finfo(scores.dtype).min
                return torch.softmax(scores.masked_fill(~mask, lowest), dim=-1)
        """,
    },
    ("07_calibration", "quantile_ece"): {
        "equal-width bins instead of quantile bins": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
                gaps = np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins)
                return float(np.abs(gaps).sum() / len(y))
        """,
        "unweighted mean of the bins' gaps": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
                bins = np.searchsorted(edges[1:-1], p)
                gaps = [abs(y[bins == k].mean() - p[bins == k].mean())
                        for k in range(n_bins) if (bins == k).any()]
                return float(np.mean(gaps))
        """,
        "mean of |y - p| row by row": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                return float(np.mean(np.abs(y - p)))
        """,
        "no absolute value (gaps of opposite signs cancel)": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
                bins = np.searchsorted(edges[1:-1], p)
                total = 0.0
                for k in range(n_bins):
                    rows = bins == k
                    if rows.any():
                        total += rows.mean() * (y[rows].mean() - p[rows].mean())
                return float(total)
        """,
        "equal-size chunks of the sorted rows (ties split between bins)": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                chunks = np.array_split(np.argsort(p), n_bins)
                return float(sum(len(c) / len(y) * abs(y[c].mean() - p[c].mean())
                                 for c in chunks))
        """,
        "a prediction on an edge put in the upper bin": """
            def quantile_ece(labels, probs, n_bins):
                y, p = np.asarray(labels, float), np.asarray(probs, float)
                edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
                bins = np.searchsorted(edges[1:-1], p, side="right")
                gaps = np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins)
                return float(np.abs(gaps).sum() / len(y))
        """,
        "n_bins ignored (always 10)": """
            from ranking.metrics import ece as ranking_ece
            def quantile_ece(labels, probs, n_bins):
                return ranking_ece(labels, probs, n_bins=10)
        """,
    },
    ("07_calibration", "correct_downsampling"): {
        "p * w, the shortcut for small p": """
            def correct_downsampling(probs, keep_rate):
                return np.asarray(probs, float) * keep_rate
        """,
        "p / w, clipped at 1": """
            def correct_downsampling(probs, keep_rate):
                return np.minimum(np.asarray(probs, float) / keep_rate, 1.0)
        """,
        "the forward map (true rate -> downsampled)": """
            def correct_downsampling(probs, keep_rate):
                b = np.asarray(probs, float)
                return b / (b + (1 - b) * keep_rate)
        """,
        "(1 - w) in place of 1 / w": """
            def correct_downsampling(probs, keep_rate):
                b = np.asarray(probs, float)
                return b / (b + (1 - b) * (1 - keep_rate))
        """,
        "keep rate read as the share of negatives dropped": """
            def correct_downsampling(probs, keep_rate):
                b = np.asarray(probs, float)
                return b / (b + (1 - b) / (1 - keep_rate))
        """,
        "changes its input in place": """
            def correct_downsampling(probs, keep_rate):
                probs /= probs + (1 - probs) / keep_rate
                return probs
        """,
    },
    ("07_calibration", "platt_scale"): {
        "regression on p instead of logit(p)": """
            def platt_scale(probs, labels, steps=50):
                y = np.asarray(labels, float)
                X = np.stack([np.asarray(probs, float), np.ones(len(y))], axis=1)
                beta = np.array([0.0, np.log(y.mean() / (1 - y.mean()))])
                for _ in range(steps):
                    s = 1 / (1 + np.exp(-X @ beta))
                    hessian = (X * (s * (1 - s))[:, None]).T @ X
                    beta = beta - np.linalg.solve(hessian, X.T @ (s - y))
                return float(beta[0]), float(beta[1])
        """,
        "slope and bias swapped": """
            def platt_scale(probs, labels, steps=50):
                p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
                y = np.asarray(labels, float)
                X = np.stack([np.log(p / (1 - p)), np.ones(len(p))], axis=1)
                beta = np.array([0.0, np.log(y.mean() / (1 - y.mean()))])
                for _ in range(steps):
                    s = 1 / (1 + np.exp(-X @ beta))
                    hessian = (X * (s * (1 - s))[:, None]).T @ X
                    beta = beta - np.linalg.solve(hessian, X.T @ (s - y))
                return float(beta[1]), float(beta[0])
        """,
        "no bias (a slope through the origin)": """
            def platt_scale(probs, labels, steps=50):
                p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
                y = np.asarray(labels, float)
                x = np.log(p / (1 - p))
                slope = 0.0
                for _ in range(steps):
                    s = 1 / (1 + np.exp(-slope * x))
                    slope -= (x @ (s - y)) / ((x * x) @ (s * (1 - s)))
                return float(slope), 0.0
        """,
        "a few steps of gradient descent (not converged)": """
            def platt_scale(probs, labels, steps=50):
                p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
                y = np.asarray(labels, float)
                x = np.log(p / (1 - p))
                slope, bias = 1.0, 0.0
                for _ in range(steps):
                    s = 1 / (1 + np.exp(-(slope * x + bias)))
                    slope -= 0.1 * np.mean((s - y) * x)
                    bias -= 0.1 * np.mean(s - y)
                return float(slope), float(bias)
        """,
        "least-squares line instead of logistic regression": """
            def platt_scale(probs, labels, steps=50):
                p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
                slope, bias = np.polyfit(np.log(p / (1 - p)), np.asarray(labels, float), 1)
                return float(slope), float(bias)
        """,
        "no clipping (a score of exactly 0 or 1 gives an infinite logit)": """
            def platt_scale(probs, labels, steps=50):
                p = np.asarray(probs, float)
                y = np.asarray(labels, float)
                X = np.stack([np.log(p / (1 - p)), np.ones(len(p))], axis=1)
                beta = np.array([0.0, np.log(y.mean() / (1 - y.mean()))])
                for _ in range(steps):
                    s = 1 / (1 + np.exp(-X @ beta))
                    hessian = (X * (s * (1 - s))[:, None]).T @ X
                    beta = beta - np.linalg.solve(hessian, X.T @ (s - y))
                return float(beta[0]), float(beta[1])
        """,
    },
    ("07_calibration", "fake_negative_correction"): {
        "b / (1 + b), the wrong way": """
            def fake_negative_correction(stream_probs):
                b = np.asarray(stream_probs, float)
                return b / (1 + b)
        """,
        "1 - b": """
            def fake_negative_correction(stream_probs):
                return 1 - np.asarray(stream_probs, float)
        """,
        "b * (1 - b)": """
            def fake_negative_correction(stream_probs):
                b = np.asarray(stream_probs, float)
                return b * (1 - b)
        """,
        "no correction (b itself)": """
            def fake_negative_correction(stream_probs):
                return np.asarray(stream_probs, float)
        """,
        "2 b, right only near 0": """
            def fake_negative_correction(stream_probs):
                return 2 * np.asarray(stream_probs, float)
        """,
    },
    ("08_sixteen_bits", "first_overflow"): {
        "the last overflowing layer, not the first": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[-1] if broken else None
        """,
        "the layer with the largest output, not the first non-finite one": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                largest = {}
                def hook_for(name):
                    def hook(module, args, out):
                        finite = out[torch.isfinite(out)]
                        largest[name] = float(finite.abs().max()) if finite.numel() else 0.0
                    return hook
                handles = [m.register_forward_hook(hook_for(name))
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return max(largest, key=largest.get)
        """,
        "hooks registered on the caller's model and never removed": """
            def first_overflow(model, batch):
                broken = []
                for name, m in model.named_modules():
                    if not list(m.children()):
                        m.register_forward_hook(
                            lambda m, a, out, name=name: broken.append(name)
                            if not torch.isfinite(out).all() else None)
                fp16 = copy.deepcopy(model).half().eval()   # the hooks come along
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                with torch.no_grad():
                    fp16(inputs)
                return broken[0] if broken else None
        """,
        "the caller's model cast to float16 in place": """
            def first_overflow(model, batch):
                was_training = model.training
                model.half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in model.named_modules() if not list(m.children())]
                with torch.no_grad():
                    model(inputs)
                for handle in handles:
                    handle.remove()
                model.train(was_training)
                return broken[0] if broken else None
        """,
        "the caller's model cast to float16 and back (its weights rounded)": """
            def first_overflow(model, batch):
                was_training = model.training
                model.half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in model.named_modules() if not list(m.children())]
                try:
                    with torch.no_grad():
                        model(inputs)
                finally:
                    for handle in handles:
                        handle.remove()
                    model.float().train(was_training)
                return broken[0] if broken else None
        """,
        "eval() called on the caller's model": """
            def first_overflow(model, batch):
                model.eval()
                fp16 = copy.deepcopy(model).half()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "the copy run in training mode (Batch Norm on batch statistics)": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "torch.autocast instead of casting the weights": """
            def first_overflow(model, batch):
                copied = copy.deepcopy(model).eval()
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in copied.named_modules() if not list(m.children())]
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
                    copied(batch)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "bfloat16 instead of float16": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).bfloat16().eval()
                inputs = {k: v.bfloat16() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "inf only (torch.isinf): a NaN goes unseen": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if torch.isinf(out).any() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "only outputs that are entirely non-finite (.all() for .any())": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if (~torch.isfinite(out)).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "containers hooked too, not only the leaves": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if isinstance(out, torch.Tensor)
                               and not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if name]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "CastModel's names, 'model.' prefix kept": """
            def first_overflow(model, batch):
                fp16 = CastModel(model, torch.float16).eval()
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if not list(m.children())]
                with torch.no_grad():
                    fp16(batch)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
        "outputs read back in named_modules() order, not call order": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                finite = {}
                leaves = [(name, m) for name, m in fp16.named_modules()
                          if not list(m.children())]
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name:
                               finite.__setitem__(name, bool(torch.isfinite(out).all())))
                           for name, m in leaves]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return next((name for name, _ in leaves if not finite[name]), None)
        """,
        "only nn.Linear layers hooked": """
            def first_overflow(model, batch):
                fp16 = copy.deepcopy(model).half().eval()
                inputs = {k: v.half() if v.is_floating_point() else v
                          for k, v in batch.items()}
                broken = []
                handles = [m.register_forward_hook(
                               lambda m, a, out, name=name: broken.append(name)
                               if not torch.isfinite(out).all() else None)
                           for name, m in fp16.named_modules() if isinstance(m, nn.Linear)]
                with torch.no_grad():
                    fp16(inputs)
                for handle in handles:
                    handle.remove()
                return broken[0] if broken else None
        """,
    },
    ("08_sixteen_bits", "choose_precision"): {
        "no safety factor (largest < 65504)": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest <= 65504, "fp16", "bf16"), index=largest.index)
        """,
        "fp16 and bf16 swapped": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest * safety <= 65504, "bf16", "fp16"),
                                 index=largest.index)
        """,
        "divided by the safety factor": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest / safety <= 65504, "fp16", "bf16"),
                                 index=largest.index)
        """,
        "2**16 = 65536 taken as fp16's largest number": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest * safety < 2 ** 16, "fp16", "bf16"),
                                 index=largest.index)
        """,
        "one format for the whole model": """
            def choose_precision(largest, safety=10.0):
                choice = "fp16" if largest.max() * safety <= 65504 else "bf16"
                return pd.Series(choice, index=largest.index)
        """,
        "safety argument ignored (always 10)": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest * 10 <= 65504, "fp16", "bf16"),
                                 index=largest.index)
        """,
        "a list, not a Series": """
            def choose_precision(largest, safety=10.0):
                return ["fp16" if value * safety <= 65504 else "bf16" for value in largest]
        """,
        "fp32 for the layers that do not fit": """
            def choose_precision(largest, safety=10.0):
                return pd.Series(np.where(largest * safety <= 65504, "fp16", "fp32"),
                                 index=largest.index)
        """,
    },
    ("08_sixteen_bits", "resilient_update"): {
        "biased batch variance (divided by B)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0, unbiased=False)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "only a rising variance masked": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                mask = (batch_var < minimal_variance) | (ratio > variance_shift_threshold)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "ratio inverted (running / batch), tested one way only": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = running_var / batch_var
                mask = (batch_var < minimal_variance) | (ratio > variance_shift_threshold)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "minimal_variance test left out (shift test only)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "masked columns updated anyway": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return mean, var, mask
        """,
        "torch.where arguments swapped (only masked columns updated)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, mean, running_mean),
                        torch.where(mask, var, running_var), mask)
        """,
        "mask inverted (True for the columns updated)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                masked = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(masked, running_mean, mean),
                        torch.where(masked, running_var, var), ~masked)
        """,
        "the running statistics updated in place": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                keep = momentum * (~mask).float()
                running_mean.mul_(1 - keep).add_(keep * batch_mean)
                running_var.mul_(1 - keep).add_(keep * batch_var)
                return running_mean, running_var, mask
        """,
        "a ratio equal to the threshold masked (>= for >)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio >= t) | (ratio <= 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "a variance equal to minimal_variance masked (<= for <)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var <= minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "momentum as the weight of the old statistics": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                t = variance_shift_threshold
                mask = (batch_var < minimal_variance) | (ratio > t) | (ratio < 1 / t)
                mean = momentum * running_mean + (1 - momentum) * batch_mean
                var = momentum * running_var + (1 - momentum) * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
        "threshold and minimal_variance ignored (the defaults always)": """
            def resilient_update(running_mean, running_var, batch, momentum=0.1,
                                 minimal_variance=1e-4, variance_shift_threshold=10.0):
                batch_mean, batch_var = batch.mean(dim=0), batch.var(dim=0)
                ratio = batch_var / running_var
                mask = (batch_var < 1e-4) | (ratio > 10) | (ratio < 0.1)
                mean = (1 - momentum) * running_mean + momentum * batch_mean
                var = (1 - momentum) * running_var + momentum * batch_var
                return (torch.where(mask, running_mean, mean),
                        torch.where(mask, running_var, var), mask)
        """,
    },
    ("09_shipping", "distillation_loss"): {
        "teacher term computed against the labels": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                loss = F.binary_cross_entropy_with_logits(logits, labels)
                return loss + weight * F.binary_cross_entropy_with_logits(logits, labels)
        """,
        "weight on the label term instead of the teacher term": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                return (weight * F.binary_cross_entropy_with_logits(logits, labels)
                        + F.binary_cross_entropy_with_logits(logits, teacher_probs))
        """,
        "sums instead of means over rows": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                bce = F.binary_cross_entropy_with_logits
                return (bce(logits, labels, reduction="sum")
                        + weight * bce(logits, teacher_probs, reduction="sum"))
        """,
        "sigmoid applied twice (probabilities passed as logits)": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                p = torch.sigmoid(logits)
                return (F.binary_cross_entropy_with_logits(p, labels)
                        + weight * F.binary_cross_entropy_with_logits(p, teacher_probs))
        """,
        "teacher probabilities taken for logits": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                soft = torch.sigmoid(teacher_probs)
                return (F.binary_cross_entropy_with_logits(logits, labels)
                        + weight * F.binary_cross_entropy_with_logits(logits, soft))
        """,
        "weight missing": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                return (F.binary_cross_entropy_with_logits(logits, labels)
                        + F.binary_cross_entropy_with_logits(logits, teacher_probs))
        """,
        "squared error on the teacher term": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                p = torch.sigmoid(logits)
                return (F.binary_cross_entropy_with_logits(logits, labels)
                        + weight * F.mse_loss(p, teacher_probs))
        """,
        "KL divergence instead of the log loss (teacher entropy left out)": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                t = teacher_probs.clamp(1e-12, 1 - 1e-12)
                kl = (F.binary_cross_entropy_with_logits(logits, teacher_probs)
                      - F.binary_cross_entropy_with_logits(torch.logit(t), teacher_probs))
                return F.binary_cross_entropy_with_logits(logits, labels) + weight * kl
        """,
        "divided by 1 + weight": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                loss = (F.binary_cross_entropy_with_logits(logits, labels)
                        + weight * F.binary_cross_entropy_with_logits(logits, teacher_probs))
                return loss / (1 + weight)
        """,
        "log(sigmoid) by hand: log(0) for confident logits": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                p = torch.sigmoid(logits)
                def ll(y):
                    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
                return ll(labels) + weight * ll(teacher_probs)
        """,
        "a float, not a tensor (.item())": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                return (F.binary_cross_entropy_with_logits(logits, labels)
                        + weight * F.binary_cross_entropy_with_logits(
                            logits, teacher_probs)).item()
        """,
        "teacher term on detached logits (no gradient toward yesterday)": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                return (F.binary_cross_entropy_with_logits(logits, labels)
                        + weight * F.binary_cross_entropy_with_logits(
                            logits.detach(), teacher_probs))
        """,
        "per-row losses, not their mean": """
            def distillation_loss(logits, labels, teacher_probs, weight):
                bce = F.binary_cross_entropy_with_logits
                return (bce(logits, labels, reduction="none")
                        + weight * bce(logits, teacher_probs, reduction="none"))
        """,
    },
    ("09_shipping", "top_k_flips"): {
        "ads that left the top k (set overlap), not slots": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = set(rows[np.argsort(-old_scores[rows], kind="stable")[:k]])
                    new = set(rows[np.argsort(-new_scores[rows], kind="stable")[:k]])
                    shares.append(len(old - new) / len(old))
                return float(np.mean(shares))
        """,
        "ascending order (lowest score on top)": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(old_scores[rows], kind="stable")[:k]
                    new = np.argsort(new_scores[rows], kind="stable")[:k]
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
        "ties broken by the later row (reversed ascending sort)": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(old_scores[rows], kind="stable")[::-1][:k]
                    new = np.argsort(new_scores[rows], kind="stable")[::-1][:k]
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
        "all flips over all slots (pooled, not per request)": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                flips = slots = 0
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")[:k]
                    new = np.argsort(-new_scores[rows], kind="stable")[:k]
                    flips += np.sum(old != new)
                    slots += len(old)
                return float(flips / slots)
        """,
        "requests ignored (one ranking of every row)": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                old = np.argsort(-old_scores, kind="stable")[:k]
                new = np.argsort(-new_scores, kind="stable")[:k]
                return float(np.mean(old != new))
        """,
        "requests as runs of consecutive rows": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares, start = [], 0
                for stop in range(1, len(requests) + 1):
                    if stop == len(requests) or requests[stop] != requests[start]:
                        old = np.argsort(-old_scores[start:stop], kind="stable")[:k]
                        new = np.argsort(-new_scores[start:stop], kind="stable")[:k]
                        shares.append(np.mean(old != new))
                        start = stop
                return float(np.mean(shares))
        """,
        "flip counts, not shares": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                counts = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")[:k]
                    new = np.argsort(-new_scores[rows], kind="stable")[:k]
                    counts.append(np.sum(old != new))
                return float(np.mean(counts))
        """,
        "divided by k even when a request has fewer candidates": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")[:k]
                    new = np.argsort(-new_scores[rows], kind="stable")[:k]
                    shares.append(np.sum(old != new) / k)
                return float(np.mean(shares))
        """,
        "k ignored (always the top 3)": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")[:3]
                    new = np.argsort(-new_scores[rows], kind="stable")[:3]
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
        "every candidate compared, not the top k": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")
                    new = np.argsort(-new_scores[rows], kind="stable")
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
        "scores in each slot compared, not the ads": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.sort(old_scores[rows])[::-1][:k]
                    new = np.sort(new_scores[rows])[::-1][:k]
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
        "tied candidates share a rank (method='min')": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                frame = pd.DataFrame({"request": requests, "old": old_scores,
                                      "new": new_scores})
                by_request = frame.groupby("request")
                old_rank = by_request["old"].rank(method="min", ascending=False)
                new_rank = by_request["new"].rank(method="min", ascending=False)
                shown = old_rank <= k
                flips = (shown & (old_rank != new_rank)).groupby(frame["request"]).sum()
                slots = frame.groupby("request").size().clip(upper=k)
                return float((flips / slots).mean())
        """,
        "sorts the caller's arrays in place": """
            def top_k_flips(requests, old_scores, new_scores, k=3):
                order = np.lexsort((-old_scores, requests))
                requests[:], old_scores[:], new_scores[:] = (
                    requests[order], old_scores[order], new_scores[order])
                shares = []
                for request in np.unique(requests):
                    rows = np.flatnonzero(requests == request)
                    old = np.argsort(-old_scores[rows], kind="stable")[:k]
                    new = np.argsort(-new_scores[rows], kind="stable")[:k]
                    shares.append(np.mean(old != new))
                return float(np.mean(shares))
        """,
    },
    ("09_shipping", "shard_rows"): {
        "contiguous blocks": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.tensor_split(torch.arange(n_rows), world_size)[rank]
        """,
        "blocks of ceil(n / world_size) rows (the last rank short or empty)": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                size = -(-n_rows // world_size)
                return torch.arange(rank * size, min((rank + 1) * size, n_rows))
        """,
        "off by one: starts at rank + 1": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(rank + 1, n_rows, world_size)
        """,
        "overlapping blocks": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                size = -(-n_rows // world_size)
                start = rank * (n_rows // world_size)
                return torch.arange(start, min(start + size, n_rows))
        """,
        "remainder dropped (drop_last)": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(rank, n_rows - n_rows % world_size, world_size)
        """,
        "padded by repeating rows (DistributedSampler's default)": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                total = -(-n_rows // world_size) * world_size
                return (torch.arange(total) % n_rows)[rank::world_size]
        """,
        "a True/False mask, not indices": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(n_rows) % world_size == rank
        """,
        "strided from the end": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(n_rows - 1 - rank, -1, -world_size)
        """,
        "no check of rank and world_size": """
            def shard_rows(n_rows, rank, world_size):
                return torch.arange(n_rows)[rank::world_size]
        """,
        "rank == world_size accepted": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank <= world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(rank, n_rows, world_size)
        """,
        "an assert instead of a ValueError": """
            def shard_rows(n_rows, rank, world_size):
                assert world_size >= 1 and 0 <= rank < world_size, "bad rank"
                return torch.arange(rank, n_rows, world_size)
        """,
        "ranks numbered from the last": """
            def shard_rows(n_rows, rank, world_size):
                if world_size < 1 or not 0 <= rank < world_size:
                    raise ValueError("bad rank or world_size")
                return torch.arange(world_size - 1 - rank, n_rows, world_size)
        """,
    },
}


# ----------------------------------------------------------------------- reading a lab
def _cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [{**cell, "source": "".join(cell["source"]) if isinstance(cell["source"], list)
             else cell["source"]} for cell in nb["cells"]]


def _python(source: str) -> str:
    """Plain Python for a cell's source (IPython magics become get_ipython() calls)."""
    from IPython.core.inputtransformer2 import TransformerManager
    return TransformerManager().transform_cell(source)


def _defined_functions(source: str) -> list[str]:
    return [node.name for node in ast.parse(_python(source)).body if isinstance(node, ast.FunctionDef)]


def _check_calls(source: str) -> list[ast.Call]:
    """``labcheck.check_*(...)`` calls in a cell."""
    calls = []
    for node in ast.walk(ast.parse(_python(source))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "labcheck"
                and node.func.attr.startswith("check_")):
            calls.append(node)
    return calls


@dataclass
class CheckCall:
    check: str               # name of the labcheck function
    function: str            # name of the exercise function it checks
    cell_index: int


@dataclass
class Lab:
    name: str
    exercises: dict[str, str] = field(default_factory=dict)   # function -> solution cell id
    checks: list[CheckCall] = field(default_factory=list)


def read_lab(path: Path) -> Lab:
    """The exercises (functions defined in solution cells) and check calls of a lab."""
    lab = Lab(path.stem)
    for index, cell in enumerate(_cells(path)):
        if cell["cell_type"] != "code" or index == 0:
            continue
        if make_student.has_solution(cell):
            for name in _defined_functions(cell["source"]):
                lab.exercises[name] = cell["id"]
        for call in _check_calls(cell["source"]):
            if not call.args or not isinstance(call.args[0], ast.Name):
                raise AssertionError(f"{path.name}: {ast.unparse(call)} must name the exercise "
                                     "function as its first argument")
            lab.checks.append(CheckCall(call.func.attr, call.args[0].id, index))
    return lab


READ = {path.stem: read_lab(path) for path in SOLUTIONS}
CHECK_CASES = [pytest.param(lab, i, id=f"{lab}-{call.check}")
               for lab in LABS for i, call in enumerate(READ[lab].checks)]
WRONG_CASES = [pytest.param(lab, i, wrong, id=f"{lab}-{call.check}-{wrong}")
               for lab in LABS for i, call in enumerate(READ[lab].checks)
               for wrong in WRONG_ANSWERS.get((lab, call.function), {})]


# -------------------------------------------------------------------- running a lab once
@dataclass
class RunLab:
    namespace: dict
    arguments: dict[int, tuple[list, dict]]   # check call number -> (args after fn, kwargs)


_RUNS: dict[str, RunLab] = {}


def run_lab(name: str) -> RunLab:
    """Execute the solution notebook's cells (up to its last check) in one namespace,
    capturing the arguments of every check call just before its cell runs."""
    if name in _RUNS:
        return _RUNS[name]
    os.environ.setdefault("MPLBACKEND", "Agg")
    path = ROOT / "labs" / "solutions" / f"{name}.ipynb"
    lab = READ[name]
    last = max((call.cell_index for call in lab.checks), default=0)
    namespace: dict = {"__name__": "__lab__"}
    arguments: dict[int, tuple[list, dict]] = {}
    number = 0
    cwd = os.getcwd()
    os.chdir(path.parent)  # notebooks run from their own folder
    try:
        for index, cell in enumerate(_cells(path)[: last + 1]):
            if cell["cell_type"] != "code" or index == 0:  # 0: the Colab setup cell
                continue
            source = _python(cell["source"])
            for call in _check_calls(cell["source"]):
                args = [eval(compile(ast.Expression(a), "<arg>", "eval"), namespace)
                        for a in call.args[1:]]
                kwargs = {k.arg: eval(compile(ast.Expression(k.value), "<arg>", "eval"), namespace)
                          for k in call.keywords}
                arguments[number] = (args, kwargs)
                number += 1
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"{path.name}[{index}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
    _RUNS[name] = RunLab(namespace, arguments)
    return _RUNS[name]


def _function_from(source: str, name: str, namespace: dict):
    scope = dict(namespace)
    exec(compile(_python(textwrap.dedent(source)), f"<{name}>", "exec"), scope)
    return scope[name]


def _cell_by_id(path: Path, cell_id: str) -> dict:
    matches = [cell for cell in _cells(path) if cell.get("id") == cell_id]
    assert len(matches) == 1, f"{path.name}: expected one cell with id {cell_id!r}"
    return matches[0]


def _run_check(lab: str, number: int, function) -> str:
    call = READ[lab].checks[number]
    args, kwargs = run_lab(lab).arguments[number]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        getattr(labcheck, call.check)(function, *args, **kwargs)
    return out.getvalue()


# ----------------------------------------------------------------------------- tests
def test_there_are_labs():
    assert LABS, "no solution notebooks found in labs/solutions/"


def test_student_labs_are_up_to_date():
    stale = make_student.stale_files(ROOT)
    assert not stale, "run `make student`:\n" + "\n".join(stale)


@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_is_checked_and_has_wrong_answers(lab):
    read = READ[lab]
    assert read.exercises, f"{lab}: no exercise (no cell with {make_student.BEGIN})"
    checked = {call.function for call in read.checks}
    assert set(read.exercises) <= checked, f"{lab}: exercises without a check: {set(read.exercises) - checked}"
    for call in read.checks:
        assert hasattr(labcheck, call.check), f"{lab}: ranking.labcheck has no {call.check}"
        assert call.function in read.exercises, f"{lab}: {call.check} checks {call.function}, not an exercise"
        assert WRONG_ANSWERS.get((lab, call.function)), (
            f"add planted wrong answers for ({lab!r}, {call.function!r}) to WRONG_ANSWERS")
    stray = [key for key in WRONG_ANSWERS if key[0] == lab and key[1] not in read.exercises]
    assert not stray, f"WRONG_ANSWERS rows for functions that are not exercises: {stray}"


@pytest.mark.parametrize("lab", LABS)
def test_student_lab_has_stubs_not_solutions(lab):
    url = make_student.repository_url(ROOT)
    student = _cells(ROOT / "labs" / f"{lab}.ipynb")
    solution = _cells(ROOT / "labs" / "solutions" / f"{lab}.ipynb")
    assert student[0]["source"] == solution[0]["source"] == make_student.setup_source(url)
    assert f'git+{url}"' in student[0]["source"]
    text = "\n".join(cell["source"] for cell in student)
    assert make_student.BEGIN not in text and make_student.END not in text
    assert text.count(make_student.STUB) == sum(
        1 for cell in solution if make_student.has_solution(cell))
    assert all(not cell.get("outputs") for cell in student)
    assert not any(make_student.SOLUTION_ONLY_TAG in cell["metadata"].get("tags", []) for cell in student)


@pytest.mark.parametrize("lab, number", CHECK_CASES)
def test_check_rejects_the_stub(lab, number):
    call = READ[lab].checks[number]
    cell = _cell_by_id(ROOT / "labs" / f"{lab}.ipynb", READ[lab].exercises[call.function])
    stub = _function_from(cell["source"], call.function, run_lab(lab).namespace)
    with pytest.raises(AssertionError, match="not implemented yet"):
        _run_check(lab, number, stub)


@pytest.mark.parametrize("lab, number, wrong", WRONG_CASES)
def test_check_rejects_a_wrong_answer(lab, number, wrong):
    call = READ[lab].checks[number]
    function = _function_from(WRONG_ANSWERS[(lab, call.function)][wrong], call.function,
                              run_lab(lab).namespace)
    with pytest.raises(AssertionError):
        _run_check(lab, number, function)


@pytest.mark.parametrize("lab, number", CHECK_CASES)
def test_check_accepts_the_solution(lab, number):
    call = READ[lab].checks[number]
    cell = _cell_by_id(ROOT / "labs" / "solutions" / f"{lab}.ipynb", READ[lab].exercises[call.function])
    solution = _function_from(cell["source"], call.function, run_lab(lab).namespace)
    printed = _run_check(lab, number, solution)
    assert printed.startswith("Correct: ")
