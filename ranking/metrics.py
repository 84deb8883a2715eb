"""How good are predicted click probabilities? Ranking, log loss and calibration.

An ad ranker needs probabilities that both order ads well (AUC) and are right
on average (calibration), because the auction multiplies them by bids. Log
loss covers both; normalized entropy (He et al. 2014) divides it by the log
loss of always predicting the base rate, so figures compare across data sets.
On simulated logs we also know the true probabilities, so `oracle_report`
shows how much of the gap from the base rate to the oracle a model closes.

Every metric accepts numpy arrays, lists, pandas Series or torch tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import checks
from .checks import ArrayLike

BASE_RATE_ROW = "base rate"
ORACLE_ROW = "oracle"
ECE_STRATEGIES = ("quantile", "uniform")


def auc(labels: ArrayLike, probs: ArrayLike) -> float:
    """ROC AUC: the chance that a random positive scores above a random negative.

    Computed from ranks (the Mann-Whitney U statistic): sort once, give tied
    scores their average rank, and sum the ranks of the positives. Ties count
    as half a win, so a constant score gives 0.5. O(n log n), pure numpy.
    """
    y, p = checks.labels_and_probabilities(labels, probs)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auc needs both classes in labels, got only one")

    order = np.argsort(p)
    sorted_probs = p[order]
    sorted_labels = y[order]

    # A run is a block of equal scores: run [start, end) shares the mean of ranks start+1 .. end.
    is_run_start = np.empty(len(p), dtype=bool)
    is_run_start[0] = True
    is_run_start[1:] = sorted_probs[1:] != sorted_probs[:-1]
    run_starts = np.flatnonzero(is_run_start)
    run_ends = np.append(run_starts[1:], len(p))
    average_rank_per_run = (run_starts + 1 + run_ends) / 2.0
    positives_per_run = np.add.reduceat(sorted_labels, run_starts)

    positive_rank_sum = positives_per_run @ average_rank_per_run
    # Subtracting the smallest possible rank sum leaves the positive-over-negative wins.
    wins = positive_rank_sum - n_pos * (n_pos + 1) / 2.0
    return float(wins / (n_pos * n_neg))


def logloss(labels: ArrayLike, probs: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log), with probs clipped to [eps, 1 - eps].

    Clipping keeps one confident mistake from making the loss infinite.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    y, p = checks.labels_and_probabilities(labels, probs)
    p = np.clip(p, eps, 1 - eps)
    losses = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(losses.mean())


def normalized_entropy(labels: ArrayLike, probs: ArrayLike) -> float:
    """Log loss divided by the entropy of the base rate (He et al. 2014).

    The entropy of the base rate is the log loss of always predicting the
    observed click rate, so that predictor scores exactly 1. Lower is better;
    1 - NE is the share of the base-rate log loss a model removes.
    """
    y, p = checks.labels_and_probabilities(labels, probs)
    base_rate = y.mean()
    if base_rate == 0 or base_rate == 1:
        raise ValueError("normalized_entropy needs both classes in labels, got only one")
    base_entropy = -(base_rate * np.log(base_rate) + (1 - base_rate) * np.log1p(-base_rate))
    return float(logloss(y, p) / base_entropy)


def _bin_index(probs: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin number (0 .. n_bins - 1) of each probability.

    "uniform": equal-width bins on [0, 1]. "quantile": bins holding about the
    same number of rows, which keeps bins populated when clicks are rare.
    Bins are (low, high], like Guo et al. 2017; the first bin also holds its low edge.
    """
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.quantile(probs, np.linspace(0.0, 1.0, n_bins + 1))
    else:
        raise ValueError(f"strategy must be one of {ECE_STRATEGIES}, got {strategy!r}")
    inner_edges = edges[1:-1]
    return np.searchsorted(inner_edges, probs, side="left")


def ece(labels: ArrayLike, probs: ArrayLike, n_bins: int = 15,
        strategy: str = "quantile") -> float:
    """Expected calibration error: sum over bins of |B|/n * |observed rate - mean prob|.

    Put the predictions into bins, compare each bin's click rate to its mean
    predicted probability, and average the gaps weighted by bin size.
    strategy "quantile" gives bins of equal row counts (good for rare clicks);
    "uniform" gives equal-width bins on [0, 1] (Guo et al. 2017).
    """
    checks.positive_int("n_bins", n_bins)
    y, p = checks.labels_and_probabilities(labels, probs)
    bins = _bin_index(p, n_bins, strategy)
    clicks_per_bin = np.bincount(bins, weights=y, minlength=n_bins)
    predicted_per_bin = np.bincount(bins, weights=p, minlength=n_bins)
    # |B|/n * |sum(y)/|B| - sum(p)/|B|| simplifies to |sum(y) - sum(p)| / n.
    return float(np.abs(clicks_per_bin - predicted_per_bin).sum() / len(y))


def calibration_ratio(labels: ArrayLike, probs: ArrayLike) -> float:
    """Mean predicted probability over observed click rate (He et al. 2014); 1.0 is calibrated.

    Above 1 the model over-predicts clicks, so advertisers would be over-charged.
    """
    y, p = checks.labels_and_probabilities(labels, probs)
    if y.sum() == 0:
        raise ValueError("calibration_ratio needs at least one positive label")
    return float(p.mean() / y.mean())


def calibration_table(labels: ArrayLike, probs: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Per quantile bin of probs: mean prediction, observed rate, count and their ratio.

    This is the data of a reliability plot: a calibrated model has
    mean_prediction close to observed_rate in every bin. Empty bins (from tied
    probabilities) are left out; ratio is NaN in bins with no positives.
    """
    checks.positive_int("n_bins", n_bins)
    y, p = checks.labels_and_probabilities(labels, probs)
    bins = _bin_index(p, n_bins, "quantile")
    counts = np.bincount(bins, minlength=n_bins)
    clicks = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)

    filled = counts > 0
    mean_prediction = predicted[filled] / counts[filled]
    observed_rate = clicks[filled] / counts[filled]
    ratio = np.full(len(observed_rate), np.nan)
    has_clicks = observed_rate > 0
    ratio[has_clicks] = mean_prediction[has_clicks] / observed_rate[has_clicks]

    table = pd.DataFrame({
        "mean_prediction": mean_prediction,
        "observed_rate": observed_rate,
        "count": counts[filled],
        "ratio": ratio,
    }, index=pd.Index(np.flatnonzero(filled), name="bin"))
    return table


def field_ece(targets: ArrayLike, probs: ArrayLike, field: ArrayLike) -> float:
    """Field-level calibration error (Pan et al. 2020): sum over the values z of
    a field of |sum over rows in z of (target - prob)|, divided by the row count.

    A model can be calibrated overall and still over-predict on one surface and
    under-predict on another; this adds up each value's miss. targets are the
    labels, or, on a simulated log, the true probabilities (no label noise).
    Pass a combined field (e.g. surface and video joined) for a cross of fields.
    """
    t = checks.as_probabilities(targets, "targets")
    p = checks.as_probabilities(probs, "probs")
    field = np.asarray(field)
    if not len(t) == len(p) == len(field):
        raise ValueError("targets, probs and field must have the same length, got "
                         f"{len(t)}, {len(p)} and {len(field)}")
    misses = pd.Series(t - p).groupby(field).sum()
    return float(misses.abs().sum() / len(t))


def field_calibration(labels: ArrayLike, probs: ArrayLike, field: ArrayLike,
                      true_probs: ArrayLike | None = None) -> pd.DataFrame:
    """Per value of a field: rows, mean prediction, observed rate, their ratio,
    and with ``true_probs`` the true rate and the ratio to it."""
    y, p = checks.labels_and_probabilities(labels, probs)
    field = np.asarray(field)
    if len(field) != len(y):
        raise ValueError(f"field has {len(field)} entries for {len(y)} rows")
    frame = pd.DataFrame({"rows": 1, "mean_prediction": p, "observed_rate": y})
    if true_probs is not None:
        true_rate = checks.as_probabilities(true_probs, "true_probs")
        if len(true_rate) != len(y):
            raise ValueError(f"true_probs has {len(true_rate)} entries for {len(y)} rows")
        frame["true_rate"] = true_rate
    grouped = frame.groupby(field)
    table = grouped.mean()
    table["rows"] = grouped["rows"].sum()
    observed = table["observed_rate"].where(table["observed_rate"] > 0)
    table["ratio"] = table["mean_prediction"] / observed     # NaN without positives
    if true_probs is not None:
        table["ratio_to_truth"] = table["mean_prediction"] / table["true_rate"]
    table.index.name = "value"
    return table


def plot_reliability(ax, labels: ArrayLike, predictions: Mapping[str, ArrayLike],
                     n_bins: int = 10, title: str | None = None) -> None:
    """A reliability diagram on ``ax``: observed rate against mean prediction
    per quantile bin, one line per predictor, log axes, the diagonal dashed.

    Points on the diagonal are calibrated; below it the model over-predicts.
    """
    from matplotlib.ticker import NullFormatter
    low, high = np.inf, 0.0
    for name, probs in predictions.items():
        table = calibration_table(labels, probs, n_bins)
        table = table[table["observed_rate"] > 0]
        ax.plot(table["mean_prediction"], table["observed_rate"], marker="o",
                markersize=4, label=name)
        low = min(low, table["mean_prediction"].min(), table["observed_rate"].min())
        high = max(high, table["mean_prediction"].max(), table["observed_rate"].max())
    ax.plot([low, high], [low, high], ls="--", color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):   # label the powers of ten only: no overlap
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("mean prediction (bin)")
    ax.set_ylabel("observed rate (bin)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)


def gap_closed(model_logloss: float, base_logloss: float, oracle_logloss: float) -> float:
    """Share of the log-loss gap from the base-rate predictor to the oracle a model closes.

    (base - model) / (base - oracle): 0 means no better than the base rate,
    1 means as good as the true probabilities, negative means worse than the base rate.
    """
    if not oracle_logloss < base_logloss:
        raise ValueError(
            f"oracle_logloss must be below base_logloss, got {oracle_logloss} and {base_logloss}")
    return float((base_logloss - model_logloss) / (base_logloss - oracle_logloss))


def expected_logloss(true_probs: ArrayLike, probs: ArrayLike,
                     eps: float = 1e-7) -> float:
    """Log loss averaged over the label's own randomness:

        mean of -[p log q + (1 - p) log(1 - q)]

    On a simulated log the true probability p of every row is known, so a model
    q can be scored against p itself instead of against one coin flip drawn
    from it. The expectation of ``logloss`` over the labels, it has no label
    noise at all: the way to measure a rare task (a few hundred conversions)
    on every row. The oracle (q = p) scores the mean entropy of p, the least
    possible. probs are clipped to [eps, 1 - eps] like in ``logloss``.
    """
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    p = checks.as_probabilities(true_probs, "true_probs")
    q = checks.as_probabilities(probs, "probs")
    if len(p) != len(q):
        raise ValueError("true_probs and probs must have the same length, "
                         f"got {len(p)} and {len(q)}")
    q = np.clip(q, eps, 1 - eps)
    return float(-(p * np.log(q) + (1 - p) * np.log1p(-q)).mean())


def oracle_gap_closed(true_probs: ArrayLike, probs: ArrayLike,
                      base_rate: float) -> float:
    """Share of the base rate -> oracle gap a model closes, in expected log loss.

    ``gap_closed`` of the model's ``expected_logloss`` against the true
    probabilities, between the constant ``base_rate`` (pass the training rate)
    and the oracle itself: 0 is the base rate, 1 the oracle, negative worse
    than the base rate. Free of label noise, so it ranks models even on a rare
    task with a few hundred positives.
    """
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate must be in (0, 1), got {base_rate!r}")
    p = checks.as_array(true_probs, "true_probs")
    base = expected_logloss(p, np.full(len(p), base_rate))
    return gap_closed(expected_logloss(p, probs), base, expected_logloss(p, p))


def hidden_part_recovered(true_probs: ArrayLike, blind_probs: ArrayLike, probs: ArrayLike,
                          steps: int = 20) -> float:
    """Share of what one hidden part of the truth is worth that a model recovers.

    ``blind_probs`` is the oracle blind to that part (``simulate.truth.blind_oracle``):
    the part is worth the gap from it to the oracle, in expected log loss. The
    model's logit joins the blind oracle's in sigmoid(w0 + w1 * blind + w2 * model),
    fitted to the true probabilities (Newton's method); the share of the part's
    gap that fit closes is what the model knows about the part and the blind
    oracle does not. 0: nothing; 1: all of it.
    """
    checks.positive_int("steps", steps)
    p = checks.as_probabilities(true_probs, "true_probs")
    blind = checks.as_probabilities(blind_probs, "blind_probs")
    q = checks.as_probabilities(probs, "probs")
    if not len(p) == len(blind) == len(q):
        raise ValueError("true_probs, blind_probs and probs must have one length, got "
                         f"{len(p)}, {len(blind)} and {len(q)}")

    def logit(values: np.ndarray) -> np.ndarray:
        values = np.clip(values, 1e-6, 1 - 1e-6)
        return np.log(values / (1 - values))

    design = np.column_stack([np.ones_like(p), logit(blind), logit(q)])   # (N, 3)
    w = np.array([0.0, 1.0, 0.0])
    for _ in range(steps):
        fitted = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (fitted - p)
        hessian = (design * (fitted * (1 - fitted))[:, None]).T @ design
        w -= np.linalg.pinv(hessian) @ gradient             # pinv: a constant model
    fitted = 1 / (1 + np.exp(-design @ w))
    return gap_closed(expected_logloss(p, fitted), expected_logloss(p, blind),
                      expected_logloss(p, p))


def oracle_report(labels: ArrayLike, predictions: Mapping[str, ArrayLike],
                  oracle_probs: ArrayLike, base_rate: float | None = None) -> pd.DataFrame:
    """One row per predictor: the base rate, each model, then the oracle.

    The base-rate row predicts a constant `base_rate` (default: the mean of
    `labels`; pass the training base rate to score an honest baseline). The
    oracle row uses the true probabilities the simulator drew labels from.
    Columns: logloss, normalized_entropy, auc (NaN for the constant base rate),
    ece, calibration_ratio and gap_closed (0 for the base rate, 1 for the oracle).
    """
    y = checks.as_array(labels, "labels")
    if base_rate is None:
        base_rate = float(y.mean())
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
    for name in predictions:
        if name in (BASE_RATE_ROW, ORACLE_ROW):
            raise ValueError(f"predictions must not use the reserved name {name!r}")

    rows = {BASE_RATE_ROW: np.full(len(y), base_rate)}
    rows.update(predictions)
    rows[ORACLE_ROW] = oracle_probs

    loglosses = {name: logloss(y, probs) for name, probs in rows.items()}
    base_logloss = loglosses[BASE_RATE_ROW]
    oracle_logloss = loglosses[ORACLE_ROW]

    records = []
    for name, probs in rows.items():
        is_constant = name == BASE_RATE_ROW
        records.append({
            "predictor": name,
            "logloss": loglosses[name],
            "normalized_entropy": normalized_entropy(y, probs),
            "auc": np.nan if is_constant else auc(y, probs),
            "ece": ece(y, probs),
            "calibration_ratio": calibration_ratio(y, probs),
            "gap_closed": gap_closed(loglosses[name], base_logloss, oracle_logloss),
        })
    return pd.DataFrame.from_records(records, index="predictor")
