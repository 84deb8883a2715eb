"""Known mistakes of lab 7, calibration and delayed conversions (labs/07_calibration.ipynb).

Exercises: ``quantile_ece``, ``correct_downsampling``, ``platt_scale`` and
``fake_negative_correction``.
"""

from __future__ import annotations

import numpy as np

from ..common import mistake


# --------------------------------------------------------------------- quantile ECE
_WEIGHTED = ("Each bin's gap must be weighted by its share of the rows, n_k / n: the bins are "
             "not all of one size (when n_bins does not divide the rows, or predictions are "
             "tied), and an empty bin weighs 0.")
_ABSOLUTE = ("Gaps of opposite signs cancel: a model too high in some bins and too low in "
             "others is not calibrated. Take each bin's absolute gap.")


def _quantile_bins(probs, n_bins):
    """Bin of each prediction: bin k holds edges[k] < p <= edges[k + 1]."""
    edges = np.quantile(probs, np.linspace(0, 1, n_bins + 1))
    return np.searchsorted(edges[1:-1], probs)


@mistake("quantile_ece",
         hint="These are equal-width bins on [0, 1]: with rare clicks almost every "
              "prediction falls into the first one. Cut at quantiles of the predictions: "
              "np.quantile(probs, np.linspace(0, 1, n_bins + 1)).")
def equal_width_bins(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    gaps = np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins)
    return float(np.abs(gaps).sum() / len(y))


@mistake("quantile_ece", hint=_WEIGHTED)
def unweighted_mean_of_the_gaps(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    bins = _quantile_bins(p, n_bins)
    gaps = [abs(y[bins == k].mean() - p[bins == k].mean())
            for k in range(n_bins) if (bins == k).any()]
    return float(np.mean(gaps))


@mistake("quantile_ece", hint=_WEIGHTED)
def gaps_summed_over_n_bins(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    bins = _quantile_bins(p, n_bins)
    gaps = [abs(y[bins == k].mean() - p[bins == k].mean())
            for k in range(n_bins) if (bins == k).any()]
    return float(np.sum(gaps) / n_bins)


@mistake("quantile_ece",
         hint="That is the mean of |y - p| row by row, which is large even for the oracle. "
              "Average labels and predictions within each bin first, then compare the two "
              "averages.")
def mean_gap_row_by_row(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    return float(np.mean(np.abs(y - p)))


@mistake("quantile_ece", hint=_ABSOLUTE)
def no_absolute_value(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    bins = _quantile_bins(p, n_bins)
    total = 0.0
    for k in range(n_bins):
        rows = bins == k
        if rows.any():
            total += rows.mean() * (y[rows].mean() - p[rows].mean())
    return float(total)


@mistake("quantile_ece", hint=_ABSOLUTE)
def mean_of_the_signed_gaps(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    bins = _quantile_bins(p, n_bins)
    gaps = [y[bins == k].mean() - p[bins == k].mean()
            for k in range(n_bins) if (bins == k).any()]
    return float(np.mean(gaps))


@mistake("quantile_ece",
         hint="Tied predictions must stay in one bin: cut at the quantile edges, a row in "
              "bin k when edges[k] < p <= edges[k + 1] (np.searchsorted(edges[1:-1], "
              "probs)), not into chunks of equal size.")
def equal_size_chunks(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    chunks = np.array_split(np.argsort(p), n_bins)
    return float(sum(len(c) / len(y) * abs(y[c].mean() - p[c].mean()) for c in chunks))


@mistake("quantile_ece",
         hint="A prediction equal to an edge belongs to the lower bin: bin k holds "
              "edges[k] < p <= edges[k + 1], which np.searchsorted(edges[1:-1], probs) "
              "gives with its default side='left'.")
def edge_in_the_upper_bin(labels, probs, n_bins):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p, side="right")
    gaps = np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins)
    return float(np.abs(gaps).sum() / len(y))


@mistake("quantile_ece", hint="Use the n_bins argument.")
def always_ten_bins(labels, probs, n_bins):
    from ...metrics import ece

    return ece(labels, probs, n_bins=10)


# ------------------------------------------------------------ downsampling correction
@mistake("correct_downsampling",
         hint="The shortcut p * w holds for small p only: at p = 0.5 and w = 0.1 the true "
              "rate is 0.5 / (0.5 + 0.5 / 0.1) = 0.091, not 0.05.")
def times_the_keep_rate(probs, keep_rate):
    return np.asarray(probs, float) * keep_rate


@mistake("correct_downsampling",
         hint="The model trained on few negatives predicts too HIGH: the correction must "
              "lower its probabilities, not raise them.")
def divided_by_the_keep_rate(probs, keep_rate):
    return np.minimum(np.asarray(probs, float) / keep_rate, 1.0)


@mistake("correct_downsampling",
         hint="That maps a true rate to what the downsampled model learns; you need the way "
              "back: q = p / (p + (1 - p) / w).")
def the_forward_map(probs, keep_rate):
    b = np.asarray(probs, float)
    return b / (b + (1 - b) * keep_rate)


@mistake("correct_downsampling",
         hint="The keep rate is the share of negatives KEPT (w): q = p / (p + (1 - p) / w).")
def one_minus_the_keep_rate(probs, keep_rate):
    b = np.asarray(probs, float)
    return b / (b + (1 - b) * (1 - keep_rate))


@mistake("correct_downsampling",
         hint="The keep rate is the share of negatives KEPT (w), not the share dropped: "
              "q = p / (p + (1 - p) / w).")
def keep_rate_read_as_dropped(probs, keep_rate):
    b = np.asarray(probs, float)
    return b / (b + (1 - b) / (1 - keep_rate))


@mistake("correct_downsampling")
def input_changed_in_place(probs, keep_rate):
    probs /= probs + (1 - probs) / keep_rate
    return probs


# ------------------------------------------------------------------- Platt scaling
def _newton(X, y, steps):
    """Logistic regression of y on the columns of X by Newton's method."""
    beta = np.array([0.0, np.log(y.mean() / (1 - y.mean()))])
    for _ in range(steps):
        s = 1 / (1 + np.exp(-X @ beta))
        hessian = (X * (s * (1 - s))[:, None]).T @ X
        beta = beta - np.linalg.solve(hessian, X.T @ (s - y))
    return beta


@mistake("platt_scale",
         hint="That is a regression on p itself: Platt scaling regresses the labels on "
              "logit(p) = log(p / (1 - p)).")
def regression_on_p(probs, labels, steps=50):
    y = np.asarray(labels, float)
    X = np.stack([np.asarray(probs, float), np.ones(len(y))], axis=1)
    slope, bias = _newton(X, y, steps)
    return float(slope), float(bias)


@mistake("platt_scale", hint="Slope and bias are swapped: return (slope, bias).")
def slope_and_bias_swapped(probs, labels, steps=50):
    p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
    X = np.stack([np.log(p / (1 - p)), np.ones(len(p))], axis=1)
    slope, bias = _newton(X, np.asarray(labels, float), steps)
    return float(bias), float(slope)


@mistake("platt_scale", hint="The bias is missing: fit a slope AND a bias.")
def no_bias(probs, labels, steps=50):
    p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, float)
    x = np.log(p / (1 - p))
    slope = 0.0
    for _ in range(steps):
        s = 1 / (1 + np.exp(-slope * x))
        slope -= (x @ (s - y)) / ((x * x) @ (s * (1 - s)))
    return float(slope), 0.0


@mistake("platt_scale",
         hint="Your fit has not reached the minimum of the log loss. Take more steps "
              "(gradient descent needs thousands here), or use Newton's method, which "
              "converges in a handful.")
def few_steps_of_gradient_descent(probs, labels, steps=50):
    p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
    y = np.asarray(labels, float)
    x = np.log(p / (1 - p))
    slope, bias = 1.0, 0.0
    for _ in range(steps):
        s = 1 / (1 + np.exp(-(slope * x + bias)))
        slope -= 0.1 * np.mean((s - y) * x)
        bias -= 0.1 * np.mean(s - y)
    return float(slope), float(bias)


@mistake("platt_scale",
         hint="That is a least-squares line through the labels, not a logistic regression: "
              "fit sigmoid(slope * logit(p) + bias) by log loss.")
def least_squares_line(probs, labels, steps=50):
    p = np.clip(np.asarray(probs, float), 1e-7, 1 - 1e-7)
    slope, bias = np.polyfit(np.log(p / (1 - p)), np.asarray(labels, float), 1)
    return float(slope), float(bias)


@mistake("platt_scale")
def no_clipping(probs, labels, steps=50):
    p = np.asarray(probs, float)
    X = np.stack([np.log(p / (1 - p)), np.ones(len(p))], axis=1)
    slope, bias = _newton(X, np.asarray(labels, float), steps)
    return float(slope), float(bias)


# ------------------------------------------------------------ fake-negative correction
@mistake("fake_negative_correction",
         hint="That is b itself: the stream shows a converting click twice, once as a "
              "negative, so b = p / (1 + p) is below p.")
def no_correction(stream_probs):
    return np.asarray(stream_probs, float)


@mistake("fake_negative_correction",
         hint="Dividing by 1 + b goes the wrong way (it lowers b further): solve "
              "b = p / (1 + p) for p.")
def divided_by_one_plus_b(stream_probs):
    b = np.asarray(stream_probs, float)
    return b / (1 + b)


@mistake("fake_negative_correction",
         hint="1 - b is the stream's share of negatives, not the true rate: solve "
              "b = p / (1 + p) for p.")
def one_minus_b(stream_probs):
    return 1 - np.asarray(stream_probs, float)


@mistake("fake_negative_correction", hint="Solve b = p / (1 + p) for p: b (1 + p) = p.")
def b_times_one_minus_b(stream_probs):
    b = np.asarray(stream_probs, float)
    return b * (1 - b)


@mistake("fake_negative_correction",
         hint="Doubling b is right only near b = 0: solve b = p / (1 + p) for p.")
def doubled(stream_probs):
    return 2 * np.asarray(stream_probs, float)
