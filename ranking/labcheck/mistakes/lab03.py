"""Known mistakes of lab 3, the deep model (labs/03_deep_model.ipynb).

Exercises: ``cross_layer`` and ``log_clip_standardize``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common import mistake


# ------------------------------------------------------------------------ cross layer
@mistake("cross_layer", hint="No residual: add x back at the end (x_{l+1} = ... + x_l)")
def no_residual(x0, x, weight, bias):
    return x0 * (x @ weight.T + bias)


@mistake("cross_layer",
         hint="The product must be with x0, the input of the whole cross network, not with x")
def product_with_x(x0, x, weight, bias):
    return x * (x @ weight.T + bias) + x


@mistake("cross_layer",
         hint="The weight is stored as (out, in), like nn.Linear's: use x @ weight.T")
def weight_not_transposed(x0, x, weight, bias):
    return x0 * (x @ weight + bias) + x


@mistake("cross_layer", hint="The bias is missing: x0 * (x @ weight.T + bias) + x")
def no_bias(x0, x, weight, bias):
    return x0 * (x @ weight.T) + x


@mistake("cross_layer", hint="The residual should be x, not x0")
def residual_of_x0(x0, x, weight, bias):
    return x0 * (x @ weight.T + bias) + x0


@mistake("cross_layer",
         hint="Multiply by x0 elementwise (x0 * ...), not with a matrix product.")
def matrix_product_with_x0(x0, x, weight, bias):
    return x0 @ (x @ weight.T + bias).T @ x0 / x0.shape[0] + x


@mistake("cross_layer")
def x_changed_in_place(x0, x, weight, bias):
    x += x0 * (x @ weight.T + bias)
    return x


# ------------------------------------------------------- transform of a heavy-tailed count
@mistake("log_clip_standardize",
         hint="Your statistics come from `values` (the later rows): fit the quantiles, mean "
              "and std on `train_values` only, as a served model never sees the future.")
def statistics_of_the_values(train_values, values, quantile=0.99):
    logs = np.log1p(np.asarray(values, dtype=float))
    low, high = np.quantile(logs, [1 - quantile, quantile])
    clipped = np.clip(logs, low, high)
    return (clipped - clipped.mean()) / clipped.std()


@mistake("log_clip_standardize",
         hint="Take log1p of the counts first, then clip and standardize the logs.")
def no_log1p(train_values, values, quantile=0.99):
    train = np.asarray(train_values, dtype=float)
    low, high = np.quantile(train, [1 - quantile, quantile])
    clipped_train = np.clip(train, low, high)
    clipped = np.clip(np.asarray(values, dtype=float), low, high)
    return (clipped - clipped_train.mean()) / clipped_train.std()


@mistake("log_clip_standardize",
         hint="The values are not clipped: clip to the training quantiles before "
              "standardizing.")
def no_clipping(train_values, values, quantile=0.99):
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    logs = np.log1p(np.asarray(values, dtype=float))
    return (logs - train_logs.mean()) / train_logs.std()


@mistake("log_clip_standardize",
         hint="Compute the mean and std of the *clipped* training logs, so the outliers do "
              "not set them.")
def statistics_of_the_unclipped_logs(train_values, values, quantile=0.99):
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    low, high = np.quantile(train_logs, [1 - quantile, quantile])
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - train_logs.mean()) / train_logs.std()


@mistake("log_clip_standardize",
         hint="Use numpy's standard deviation with ddof=0 (np.std), not pandas' default "
              "ddof=1.")
def pandas_std(train_values, values, quantile=0.99):
    train_logs = pd.Series(np.log1p(np.asarray(train_values, dtype=float)))
    low, high = train_logs.quantile(1 - quantile), train_logs.quantile(quantile)
    clipped_train = train_logs.clip(low, high)
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - clipped_train.mean()) / clipped_train.std()


@mistake("log_clip_standardize",
         hint="That is min-max scaling to [0, 1]: standardize with the mean and std instead.")
def min_max_scaling(train_values, values, quantile=0.99):
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    low, high = np.quantile(train_logs, [1 - quantile, quantile])
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - low) / (high - low)


@mistake("log_clip_standardize", hint="Use the quantile argument, not a fixed 0.99.")
def quantile_ignored(train_values, values, quantile=0.99):
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    low, high = np.quantile(train_logs, [0.01, 0.99])
    clipped_train = np.clip(train_logs, low, high)
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - clipped_train.mean()) / clipped_train.std()
