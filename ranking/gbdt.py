"""The GBDT baseline: counting features a team would engineer, and LightGBM on top.

Before deep models, ads rankers were gradient-boosted trees over hand-made
features, and the strongest of those were *historical click rates*: how often
this user, this item, this advertiser (alone or on this surface) was clicked
before. Trees cannot use a raw ID with tens of thousands of values, so the
team turns each ID into a few numbers the trees can split on.

Those rates must only use the past. A rate computed over the whole log would
tell each row about its own click and about later ones: a model trained on it
looks brilliant offline and fails in production, where the future is unknown.
Here every rate counts only impressions *strictly earlier in time* than the
row, over the whole log in time order, so a test-day row may use training-day
clicks but never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd

from . import checks
from .features import DENSE
from .simulate.world import SECONDS_PER_DAY

HISTORY_KEYS: dict[str, tuple[str, ...]] = {
    "user": ("user_id",),
    "item": ("item_id",),
    "advertiser": ("advertiser_id",),
    "user_x_surface": ("user_id", "surface"),
    "item_x_surface": ("item_id", "surface"),
    "advertiser_x_surface": ("advertiser_id", "surface"),
}
"""Name of each historical-rate feature -> the columns whose values define its counter."""


def _check_frame(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError("the frame is empty: there is nothing to count")
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"unknown column(s) {missing}: the frame has {list(frame.columns)}")


def counts_before(frame: pd.DataFrame, keys: Sequence[str], label: str = "click"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: impressions and positive labels of its key strictly earlier in time.

    Rows are sorted by (key, timestamp); a running count per key, taken at the
    first row of each (key, timestamp) group, counts only earlier rows, so a
    row never sees its own label, a later one or one logged at the same second.
    Returns two int64 arrays aligned with the rows of ``frame``.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise ValueError("keys must name at least one column")
    _check_frame(frame, [*keys, "timestamp", label])
    groups = frame.groupby(keys, sort=False, observed=True, dropna=False)
    key = groups.ngroup().to_numpy()
    time = frame["timestamp"].to_numpy()
    positive = frame[label].to_numpy().astype(np.int64)

    order = np.lexsort((time, key))                 # by key, then by time
    key, time, positive = key[order], time[order], positive[order]
    row = np.arange(len(order))
    new_key = np.r_[True, key[1:] != key[:-1]]
    new_moment = new_key | np.r_[True, time[1:] != time[:-1]]
    # the first row of each row's key, and of its (key, time) group
    key_start = np.maximum.accumulate(np.where(new_key, row, 0))
    moment_start = np.maximum.accumulate(np.where(new_moment, row, 0))
    # positive labels over all earlier rows, of any key
    positives_before_row = np.cumsum(positive) - positive

    impressions = np.empty(len(order), dtype=np.int64)
    positives = np.empty(len(order), dtype=np.int64)
    impressions[order] = moment_start - key_start
    positives[order] = (positives_before_row[moment_start]
                        - positives_before_row[key_start])
    return impressions, positives


def historical_ctr(frame: pd.DataFrame, keys: Sequence[str], prior: float,
                   strength: float = 50.0, label: str = "click") -> np.ndarray:
    """Smoothed past click rate of each row's key: (clicks + a * prior) / (impressions + a).

    ``strength`` a is worth a pseudo-impressions at the prior rate: a key seen
    once with one click gets a rate near the prior, not 100%, and a key never
    seen before gets exactly the prior. Use a prior known before the rows it
    is used on, such as the training days' click rate.
    """
    _check_smoothing(prior, strength)
    impressions, clicks = counts_before(frame, keys, label)
    return smoothed_rate(clicks, impressions, prior, strength)


def _check_smoothing(prior: float, strength: float) -> None:
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be a rate in (0, 1), got {prior!r}")
    if not strength > 0.0:
        raise ValueError(f"strength must be positive, got {strength!r}")


def smoothed_rate(clicks: np.ndarray, impressions: np.ndarray, prior: float,
                  strength: float) -> np.ndarray:
    """(clicks + strength * prior) / (impressions + strength).

    With no impressions seen, this is exactly the prior.
    """
    return (clicks + strength * prior) / (impressions + strength)


def gbdt_features(impressions: pd.DataFrame, prior: float, strength: float = 50.0,
                  keys: dict[str, tuple[str, ...]] | None = None, *, label: str = "click",
                  numeric: Sequence[str] = DENSE, categorical: Sequence[str] = ("surface",),
                  flags: Sequence[str] = ("is_video",)) -> pd.DataFrame:
    """The trees' inputs, one row per impression, with the index of ``impressions``.

    Per history key: ``<name>_impressions`` (earlier impressions of the key)
    and ``<name>_ctr`` (its smoothed past rate of ``label``); then the logged
    ``numeric`` features, the ``categorical`` ones (as pandas categories), the
    0/1 ``flags`` and hour of day. The defaults are the simulated log's; a real
    log names its own. Compute this on the whole log, then split it by time:
    each row only counts earlier rows.
    """
    _check_smoothing(prior, strength)
    keys = HISTORY_KEYS if keys is None else keys
    if not keys:
        raise ValueError("keys must name at least one history feature")
    needed = sorted({column for columns in keys.values() for column in columns})
    _check_frame(impressions, [*needed, *numeric, *categorical, *flags, "timestamp", label])
    columns: dict[str, np.ndarray | pd.Series] = {}
    for name, key_columns in keys.items():
        seen, positives = counts_before(impressions, key_columns, label)
        columns[f"{name}_impressions"] = seen
        columns[f"{name}_ctr"] = smoothed_rate(positives, seen, prior, strength)
    for name in numeric:
        columns[name] = impressions[name].to_numpy(np.float64)
    for name in categorical:
        columns[name] = impressions[name].astype("category")
    for name in flags:
        columns[name] = impressions[name].to_numpy(np.int8)
    columns["hour_of_day"] = (impressions["timestamp"].to_numpy() % SECONDS_PER_DAY) // 3600
    return pd.DataFrame(columns, index=impressions.index)


class GBDTClassifier:
    """LightGBM gradient-boosted trees trained on log loss, returning probabilities.

    Labels are clicks (0 or 1) or, on a simulated log, the oracle probabilities
    themselves (any value in [0, 1]): the same log loss then measures how well
    a feature set *could* do with unlimited data. Row and column subsampling
    make the seed matter (several seeds give the run-to-run spread); LightGBM's
    deterministic mode on one thread makes the same seed give the same trees.
    With validation data, training stops after ``early_stopping_rounds`` rounds
    without a lower validation log loss, and predictions use the best round.
    """

    def __init__(self, num_trees: int = 300, learning_rate: float = 0.1, num_leaves: int = 31,
                 min_data_in_leaf: int = 200, feature_fraction: float = 0.8,
                 bagging_fraction: float = 0.8, seed: int = 0,
                 early_stopping_rounds: int | None = 20):
        for name, value in (("num_trees", num_trees), ("num_leaves", num_leaves),
                            ("min_data_in_leaf", min_data_in_leaf)):
            checks.positive_int(name, value)
        checks.nonnegative_int("seed", seed)
        if num_leaves < 2:
            raise ValueError(f"num_leaves must be at least 2, got {num_leaves}")
        for name, value in (("learning_rate", learning_rate), ("feature_fraction", feature_fraction),
                            ("bagging_fraction", bagging_fraction)):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        if early_stopping_rounds is not None and (
                isinstance(early_stopping_rounds, bool) or early_stopping_rounds < 1):
            raise ValueError(f"early_stopping_rounds must be None or >= 1, got {early_stopping_rounds!r}")
        self.num_trees = int(num_trees)
        self.early_stopping_rounds = early_stopping_rounds
        self.params = {
            "objective": "cross_entropy", "metric": "cross_entropy", "learning_rate": learning_rate,
            "num_leaves": int(num_leaves), "min_data_in_leaf": int(min_data_in_leaf),
            "feature_fraction": feature_fraction, "bagging_fraction": bagging_fraction,
            "bagging_freq": 1 if bagging_fraction < 1.0 else 0, "seed": int(seed),
            "deterministic": True, "force_row_wise": True, "num_threads": 1, "verbose": -1,
        }
        self.booster: lgb.Booster | None = None
        self.best_iteration: int | None = None
        """Number of trees predictions use: the best validation round, or all trees."""
        self.valid_curve: pd.Series | None = None
        """Validation log loss after each round (index from 1); None without validation data."""

    def fit(self, train_features: pd.DataFrame, train_labels, valid_features: pd.DataFrame | None = None,
            valid_labels=None) -> "GBDTClassifier":
        """Grow trees on the training rows, watching the validation rows if given."""
        train_labels = _check_xy(train_features, train_labels, "train")
        if (valid_features is None) != (valid_labels is None):
            raise ValueError("pass both valid_features and valid_labels, or neither")
        train_set = lgb.Dataset(train_features, train_labels)
        if valid_features is None:
            self.booster = lgb.train(self.params, train_set, num_boost_round=self.num_trees)
            self.valid_curve = None
            self.best_iteration = self.booster.current_iteration()
            return self

        valid_labels = _check_xy(valid_features, valid_labels, "valid")
        if list(valid_features.columns) != list(train_features.columns):
            raise ValueError("valid_features must have the same columns as train_features")
        valid_set = lgb.Dataset(valid_features, valid_labels, reference=train_set)
        record: dict = {}
        callbacks = [lgb.record_evaluation(record)]
        if self.early_stopping_rounds is not None:
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster = lgb.train(self.params, train_set, num_boost_round=self.num_trees,
                                 valid_sets=[valid_set], valid_names=["valid"], callbacks=callbacks)
        losses = record["valid"]["cross_entropy"]
        self.valid_curve = pd.Series(losses, index=pd.RangeIndex(1, len(losses) + 1, name="round"),
                                     name="valid_logloss")
        self.best_iteration = int(self.valid_curve.idxmin())
        return self

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Click probabilities from the first ``best_iteration`` trees."""
        booster = self._fitted()
        _check_xy(features, None, "features")
        if list(features.columns) != booster.feature_name():
            raise ValueError(f"features must have the training columns {booster.feature_name()}, "
                             f"got {list(features.columns)}")
        return booster.predict(features, num_iteration=self.best_iteration)

    def feature_importance(self) -> pd.Series:
        """Total log-loss reduction (gain) of the splits on each feature, largest first."""
        booster = self._fitted()
        gain = booster.feature_importance(importance_type="gain", iteration=self.best_iteration)
        return pd.Series(gain, index=booster.feature_name(), name="gain").sort_values(ascending=False)

    def _fitted(self) -> lgb.Booster:
        if self.booster is None:
            raise RuntimeError("call fit() before predict() or feature_importance()")
        return self.booster


def _check_xy(features: pd.DataFrame, labels, name: str) -> np.ndarray | None:
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"{name} features must be a pandas DataFrame, got {type(features).__name__}")
    if len(features) == 0:
        raise ValueError(f"{name} features are empty")
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(labels) != len(features):
        raise ValueError(f"{name}: {len(features)} feature rows but {len(labels)} labels")
    if np.isnan(labels).any() or labels.min() < 0.0 or labels.max() > 1.0:
        raise ValueError(f"{name} labels must be 0/1 clicks or probabilities in [0, 1]")
    return labels
