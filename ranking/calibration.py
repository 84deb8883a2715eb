"""Calibration layers: make a ranker's probabilities mean what they say.

A model trained on log loss is calibrated on its own training days, on
average. It stops being so when the world moves (a launch shifts one
surface's click rate), when training changed the label mix (negative
downsampling), or when a rare head of a multi-task network ends over- or
under-confident. The fix used in production is a small model on top of the
frozen ranker, fitted on a recent held-out day and applied to the days after:

- ``PlattScaling``: p' = sigmoid(a * logit(p) + b), two numbers (Platt 1999);
- ``ContextualPlatt``: the same regression with context features beside the
  logit (surface, video, ...), so each context gets its own correction;
- ``IsotonicCalibration``: any monotone map (scikit-learn): flexible, but it
  needs many calibration rows;
- ``GroupCalibration``: one multiplicative factor per group (an advertiser),
  shrunk toward the global factor when the group has little data.

``correct_downsampling`` undoes negative downsampling in closed form (He et
al. 2014), without any calibration data at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from . import checks
from .checks import ArrayLike

EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] before taking their logit."""


def logit(probs: ArrayLike) -> np.ndarray:
    """log(p / (1 - p)), with p clipped to [EPS, 1 - EPS] so 0 and 1 stay finite."""
    p = np.clip(checks.as_probabilities(probs, "probs"), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class PlattScaling:
    """p' = sigmoid(slope * logit(p) + bias), fitted by logistic regression.

    slope < 1 softens an over-confident model, bias moves every prediction
    up or down: the global fix for a model that is off on average.
    """

    def __init__(self) -> None:
        self.slope: float | None = None
        self.bias: float | None = None

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> "PlattScaling":
        labels, probs = _check_calibration_set(labels, probs)
        features = logit(probs)[:, None]                     # (N, 1)
        weights, bias = fit_logistic(features, labels)
        self.slope, self.bias = float(weights[0]), bias
        return self

    def transform(self, probs: ArrayLike) -> np.ndarray:
        _check_fitted(self, self.slope)
        return sigmoid(self.slope * logit(probs) + self.bias)


class ContextualPlatt:
    """Platt scaling with context: sigmoid(a * logit(p) + b + sum of offsets).

    Each value of each context field (surface "search", is_video 1, ...) gets
    its own offset, so a shift on one surface is corrected on that surface
    only. With ``slopes=True`` each value also gets its own change of slope.
    A value the calibration day never saw gets no correction of its own.
    """

    def __init__(self, fields: Sequence[str], slopes: bool = False,
                 l2: float = 1.0) -> None:
        if isinstance(fields, str) or not fields:
            raise ValueError("fields must be a non-empty list of column names, "
                             f"got {fields!r}")
        self.fields = tuple(fields)
        self.slopes = slopes
        self.l2 = l2
        self.values: dict[str, list] | None = None
        self.weights: np.ndarray | None = None
        self.bias: float | None = None

    def fit(self, probs: ArrayLike, labels: ArrayLike,
            context: pd.DataFrame) -> "ContextualPlatt":
        labels, probs = _check_calibration_set(labels, probs)
        self._check_context(context, len(probs))
        self.values = {name: sorted(pd.unique(context[name]))
                       for name in self.fields}
        features = self.features(probs, context)            # (N, columns)
        self.weights, self.bias = fit_logistic(features, labels, self.l2)
        return self

    def transform(self, probs: ArrayLike, context: pd.DataFrame) -> np.ndarray:
        _check_fitted(self, self.weights)
        probs = checks.as_probabilities(probs, "probs")
        self._check_context(context, len(probs))
        return sigmoid(self.features(probs, context) @ self.weights + self.bias)

    def features(self, probs: np.ndarray, context: pd.DataFrame) -> np.ndarray:
        """[logit, one-hot of every field value (and logit x one-hot)]."""
        model_logit = logit(probs)
        columns = [model_logit]
        for name in self.fields:
            values = context[name].to_numpy()
            for value in self.values[name]:
                is_value = (values == value).astype(float)
                columns.append(is_value)
                if self.slopes:
                    columns.append(is_value * model_logit)
        return np.stack(columns, axis=1)

    def _check_context(self, context: pd.DataFrame, n_rows: int) -> None:
        if not isinstance(context, pd.DataFrame):
            raise TypeError(f"context must be a DataFrame, got {type(context).__name__}")
        missing = [name for name in self.fields if name not in context]
        if missing:
            raise ValueError(f"context has no column(s) {missing}; it has "
                             f"{list(context.columns)}")
        if len(context) != n_rows:
            raise ValueError(f"context has {len(context)} rows for {n_rows} "
                             "probabilities")


class IsotonicCalibration:
    """The best monotone map from predictions to rates (scikit-learn).

    It can fix any shape of miscalibration, but each of its steps is fitted
    on the rows between two cut points: with few calibration rows it learns
    their noise (scikit-learn's docs warn of it), and its steps create ties
    that lower AUC.
    """

    def __init__(self) -> None:
        self.isotonic: IsotonicRegression | None = None

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> "IsotonicCalibration":
        labels, probs = _check_calibration_set(labels, probs)
        self.isotonic = IsotonicRegression(y_min=EPS, y_max=1 - EPS,
                                           out_of_bounds="clip")
        self.isotonic.fit(probs, labels)
        return self

    def transform(self, probs: ArrayLike) -> np.ndarray:
        _check_fitted(self, self.isotonic)
        return self.isotonic.predict(checks.as_probabilities(probs, "probs"))


class GroupCalibration:
    """One factor per group: p' = min(1, factor[group] * p).

    factor[g] = (positives in g + s * global factor) / (predicted in g + s),
    where s = ``prior_strength`` counts predicted positives: a group with
    little data keeps the global factor, a group with much data gets its own
    observed / predicted ratio. Groups unseen in fitting get the global one.
    """

    def __init__(self, prior_strength: float = 20.0) -> None:
        if not prior_strength > 0:
            raise ValueError(f"prior_strength must be > 0, got {prior_strength!r}")
        self.prior_strength = prior_strength
        self.global_factor: float | None = None
        self.factors: pd.Series | None = None

    def fit(self, probs: ArrayLike, labels: ArrayLike,
            groups: ArrayLike) -> "GroupCalibration":
        labels, probs = _check_calibration_set(labels, probs)
        groups = _check_groups(groups, len(probs))
        sums = pd.DataFrame({"label": labels, "prob": probs, "group": groups}
                            ).groupby("group")[["label", "prob"]].sum()
        self.global_factor = float(labels.sum() / probs.sum())
        strength = self.prior_strength
        self.factors = ((sums["label"] + strength * self.global_factor)
                        / (sums["prob"] + strength))
        return self

    def transform(self, probs: ArrayLike, groups: ArrayLike) -> np.ndarray:
        _check_fitted(self, self.factors)
        probs = checks.as_probabilities(probs, "probs")
        groups = _check_groups(groups, len(probs))
        factor = pd.Series(groups).map(self.factors).fillna(self.global_factor)
        return np.minimum(1.0, factor.to_numpy() * probs)


def fit_head_calibrators(probs: Mapping[str, ArrayLike],
                         labels: Mapping[str, ArrayLike],
                         rows: Mapping[str, ArrayLike] | None = None
                         ) -> dict[str, PlattScaling]:
    """One ``PlattScaling`` per head of a multi-task model.

    rows: {task: boolean mask}, the rows a head is defined on (the
    conversion: clicked rows only); other heads use every row.
    """
    rows = rows or {}
    calibrators = {}
    for task, task_probs in probs.items():
        if task not in labels:
            raise ValueError(f"no labels for head {task!r}; have {sorted(labels)}")
        task_probs = checks.as_array(task_probs, f"probs[{task!r}]")
        task_labels = checks.as_array(labels[task], f"labels[{task!r}]")
        keep = np.asarray(rows.get(task, np.ones(len(task_probs), dtype=bool)))
        if keep.dtype != bool or keep.shape != task_probs.shape:
            raise ValueError(f"rows[{task!r}] must be a boolean mask of {len(task_probs)} "
                             f"rows, got dtype {keep.dtype} and shape {keep.shape}")
        calibrators[task] = PlattScaling().fit(task_probs[keep], task_labels[keep])
    return calibrators


def downsample_negatives(labels: ArrayLike, keep_rate: float,
                         seed: int = 0) -> np.ndarray:
    """Indices of every positive and of a random ``keep_rate`` share of negatives.

    Ads teams train on few negatives to save compute; the model then sees
    a positive rate about 1 / keep_rate times too high.
    """
    if not 0 < keep_rate <= 1:
        raise ValueError(f"keep_rate must be in (0, 1], got {keep_rate!r}")
    labels = checks.as_array(labels, "labels")
    keep = (labels == 1) | (np.random.default_rng(seed).random(len(labels))
                            < keep_rate)
    return np.flatnonzero(keep)


def correct_downsampling(probs: ArrayLike, keep_rate: float) -> np.ndarray:
    """q = p / (p + (1 - p) / w): a model trained on a share w of the
    negatives, mapped back to the true rate (He et al. 2014)."""
    if not 0 < keep_rate <= 1:
        raise ValueError(f"keep_rate must be in (0, 1], got {keep_rate!r}")
    p = checks.as_probabilities(probs, "probs")
    return p / (p + (1 - p) / keep_rate)


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = 1e-6,
                 max_steps: int = 100) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression, by Newton's method.

    Minimizes the summed log loss plus l2/2 * |weights|^2 (the bias is not
    penalized). A handful of steps converge on a few features.
    """
    n_rows, n_features = features.shape
    design = np.hstack([features, np.ones((n_rows, 1))])     # (N, columns + 1)
    penalty = np.full(n_features + 1, l2)
    penalty[-1] = 0.0                                          # free bias
    beta = np.zeros(n_features + 1)
    beta[-1] = np.log(labels.mean() / (1 - labels.mean()))
    for _ in range(max_steps):
        p = sigmoid(design @ beta)
        gradient = design.T @ (p - labels) + penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(beta)), gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def _check_calibration_set(labels: ArrayLike, probs: ArrayLike
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Labels of both classes, probabilities in [0, 1], no NaN."""
    labels, probs = checks.labels_and_probabilities(labels, probs)
    if labels.min() == labels.max():
        raise ValueError("the calibration set holds one class only "
                         f"(every label is {int(labels[0])}): nothing to fit")
    return labels, probs


def _check_groups(groups: ArrayLike, n_rows: int) -> np.ndarray:
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n_rows:
        raise ValueError(f"groups must be 1-d with one entry per row ({n_rows}), "
                         f"got shape {groups.shape}")
    return groups


def _check_fitted(calibrator, parameter) -> None:
    if parameter is None:
        raise RuntimeError(f"{type(calibrator).__name__} is not fitted: call fit first")
