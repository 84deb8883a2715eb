"""From the impressions DataFrame to a dict of tensors a model can eat.

Three kinds of input come out of here, all built with vectorized numpy:
categorical IDs (looked up in embedding tables), dense features (log1p, clipped
and scaled with statistics from the training split only) and, for the sequence
features, where each impression's user events lie in ``encoder.history``: the
events themselves are gathered batch by batch (``ranking.history``).
Labels and (on a simulated log) oracle probabilities travel in the same dict, so
a batch has all a training step and an evaluation need. A real log
(``ranking.real.RatingLog``) goes through the same code: it names its own inputs
and tasks (``log_inputs``) and has no oracle. A spec may ask for several kinds of user
sequence (``SEQUENCE_KINDS``: engagement, ads, search); each has its own history
and its own keys (``EventHistories``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import checks
from .history import NO_ITEM, EventHistories, EventHistory
from .real import RatingLog
from .transforms import skew_reduced_by_log1p
from .simulate import ACTIONS, SURFACES, TASKS, AdLogConfig, AdLogs
from .simulate.logs import surface_codes
from .simulate.world import SECONDS_PER_DAY

CATEGORICAL = ("user_id", "item_id", "advertiser_id", "surface", "is_video", "hour_of_day",
               "category")
DENSE = ("user_follower_count", "user_engagement_count", "item_save_count", "item_age_days",
         "advertiser_budget", "context_similarity", "query_match")
COMPUTED = ("hour_of_day", "category")
"""Categorical inputs computed from other columns: the timestamp, the item's category."""
COUNT_LIKE = ("user_follower_count", "user_engagement_count", "item_save_count",
              "item_age_days", "advertiser_budget")
"""Dense columns that are non-negative and heavy-tailed: log1p applies to these."""
SEQUENCE_KINDS = ("engagement", "ads", "search")
"""Kinds of user sequence: organic engagement (``logs.events``), engagement with ads (the
clicks, saves and hides of earlier impressions) and search queries (``logs.searches``)."""
AD_ACTIONS = ("click", "save", "hide")
"""Actions of the ads sequence (codes 0, 1, 2)."""


@dataclass(frozen=True)
class FeatureSpec:
    """Which inputs to build and how to transform the dense ones."""

    categorical: tuple[str, ...] = CATEGORICAL
    dense: tuple[str, ...] = DENSE
    log1p: bool | str = True
    """Apply log1p to the heavy-tailed count columns (True), to none (False), or to the
    columns whose skew it at least halves on the training split ("auto")."""
    clip_quantile: float | None = 0.999
    """Clip each dense column to the training split's [1 - q, q] quantiles."""
    scaling: str | None = "standard"
    """'standard' (z-score), 'minmax' (to [0, 1]) or None, with training statistics."""
    sequence_length: int = 32
    """Most recent engagement events per impression (0: no sequence features)."""
    sequence_kinds: tuple[str, ...] = ("engagement",)
    """Which kinds of user sequence to gather (``SEQUENCE_KINDS``), each of that length."""
    tasks: tuple[str, ...] = TASKS
    conversion_observed_at: float | None = None
    """If set (seconds since the log start), a conversion counts only if reported by then."""

    def __post_init__(self) -> None:
        # kept as plain Python values: a spec is hashable and saves as JSON
        for name in ("categorical", "dense", "tasks", "sequence_kinds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "sequence_length",
                           checks.nonnegative_int("sequence_length", self.sequence_length))
        for name in ("clip_quantile", "conversion_observed_at"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, checks.nonnegative_number(name, getattr(self, name)))
        unknown = set(self.sequence_kinds) - set(SEQUENCE_KINDS)
        if not self.sequence_kinds or unknown:
            raise ValueError(f"sequence_kinds must be a non-empty subset of {SEQUENCE_KINDS},"
                             f" got {self.sequence_kinds!r}")
        if self.log1p not in (True, False, "auto"):
            raise ValueError(f"log1p must be True, False or 'auto', got {self.log1p!r}")
        if self.clip_quantile is not None and not 0.5 < self.clip_quantile <= 1.0:
            raise ValueError(f"clip_quantile must be in (0.5, 1] or None, got {self.clip_quantile}")
        if self.scaling not in ("standard", "minmax", None):
            raise ValueError(f"scaling must be 'standard', 'minmax' or None, got {self.scaling!r}")


@dataclass
class DenseStatistics:
    """Per-column clip bounds and scaling statistics, fitted on the training split."""

    low: np.ndarray
    high: np.ndarray
    center: np.ndarray
    scale: np.ndarray


class FeatureEncoder:
    """Fit transforms on a training frame, then turn any frame into tensors.

    >>> encoder = FeatureEncoder(logs).fit(train_frame)
    >>> train = encoder.transform(train_frame)   # dict[str, Tensor]
    >>> sequences = encoder.history.gather(train)   # seq_item_id (N, L), ...

    All it reads from the log besides the events is the size of each id space
    and each item's category: with its fitted statistics, that is its
    ``state()``, from which ``FeatureEncoder.from_state`` rebuilds it without
    the log (serving does).
    """

    def __init__(self, logs: AdLogs | RatingLog, spec: FeatureSpec | None = None):
        self.spec = spec if spec is not None else FeatureSpec()
        self.logs: AdLogs | RatingLog | None = logs
        """The log the encoder was built from (None when rebuilt from its state)."""
        sizes = check_spec_against_log(self.spec, logs)
        self.cardinalities = {name: sizes[name] for name in self.spec.categorical}
        """Number of distinct values of each categorical input (embedding table sizes)."""
        self.item_category = logs.items["category"].to_numpy()
        self.statistics: DenseStatistics | None = None
        self.log1p_columns = self._log1p_columns()
        """Dense columns log1p applies to (chosen by ``fit`` when the spec says "auto")."""
        self.history: EventHistory | EventHistories | None = None
        """Every user's events, to gather sequences from (None if sequence_length is 0);
        ``EventHistories`` when the spec asks for more than the engagement sequence."""
        if self.spec.sequence_length > 0:
            self.history = self._histories(logs)

    def _log1p_columns(self) -> tuple[str, ...]:
        if self.spec.log1p == "auto" or not self.spec.log1p:
            return ()                            # "auto": fit decides
        return tuple(name for name in self.spec.dense if name in COUNT_LIKE)

    def _histories(self, logs: AdLogs | RatingLog) -> EventHistory | EventHistories:
        """One history per sequence kind; the engagement kind keeps the plain keys."""
        length, kinds = self.spec.sequence_length, self.spec.sequence_kinds
        histories = {kind: EventHistory(sequence_events(logs, kind), self.item_category,
                                        length, kind="" if kind == "engagement" else kind)
                     for kind in kinds}
        return histories["engagement"] if kinds == ("engagement",) else EventHistories(histories)

    def state(self) -> dict:
        """The fitted encoder as JSON values: spec, id-space sizes and dense statistics
        (each item's category, an array, is kept apart)."""
        if self.statistics is None:
            raise RuntimeError("call fit(train_frame) before state()")
        statistics = dataclasses.asdict(self.statistics)
        state = {"spec": dataclasses.asdict(self.spec), "cardinalities": dict(self.cardinalities),
                 "dense_statistics": {name: values.tolist()
                                      for name, values in statistics.items()}}
        if self.spec.log1p == "auto":
            state["log1p_columns"] = list(self.log1p_columns)
        return state

    @classmethod
    def from_state(cls, state: dict, item_category: np.ndarray) -> FeatureEncoder:
        """The fitted encoder ``state()`` described, for ids of items whose category is
        ``item_category``; no log, so no event history: refused for a spec with sequences."""
        spec = FeatureSpec(**state["spec"])            # its lists become tuples
        if spec.sequence_length > 0:
            raise ValueError("an encoder with sequence features needs the users' events: "
                             "build it from the log")
        encoder = cls.__new__(cls)
        encoder.spec, encoder.logs, encoder.history = spec, None, None
        encoder.cardinalities = dict(state["cardinalities"])
        encoder.log1p_columns = (tuple(state["log1p_columns"]) if spec.log1p == "auto"
                                 else encoder._log1p_columns())
        encoder.item_category = np.asarray(item_category)
        encoder.statistics = DenseStatistics(**{
            name: np.array(values, dtype=np.float64)
            for name, values in state["dense_statistics"].items()})
        return encoder

    @property
    def n_dense(self) -> int:
        return len(self.spec.dense)

    @property
    def n_actions(self) -> int:
        """Action vocabulary of the sequence, padding included."""
        return len(ACTIONS) + 1

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        """Learn clip bounds and scaling statistics from the training frame only."""
        self.check_columns(frame)
        if self.spec.log1p == "auto":
            self.log1p_columns = ()
            raw = self._raw_dense(frame)
            self.log1p_columns = tuple(name for name, column in zip(self.spec.dense, raw.T)
                                       if skew_reduced_by_log1p(column))
        values = self._raw_dense(frame)
        if self.spec.clip_quantile is not None:
            low = np.quantile(values, 1.0 - self.spec.clip_quantile, axis=0)
            high = np.quantile(values, self.spec.clip_quantile, axis=0)
        else:
            low, high = values.min(axis=0), values.max(axis=0)
        clipped = np.clip(values, low, high)
        if self.spec.scaling == "standard":
            center, scale = clipped.mean(axis=0), clipped.std(axis=0)
        elif self.spec.scaling == "minmax":
            center, scale = low, high - low
        else:
            center, scale = np.zeros_like(low), np.ones_like(low)
        scale = np.where(scale > 0, scale, 1.0)
        self.statistics = DenseStatistics(low=low, high=high, center=center, scale=scale)
        return self

    def transform(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        """Tensors for every row of ``frame``: ids, dense, labels, oracle and, with
        sequences, history_start, history_end and timestamp (for ``history.gather``)."""
        if self.statistics is None:
            raise RuntimeError("call fit(train_frame) before transform()")
        self.check_columns(frame)
        timestamps = self._timestamps(frame)
        data = {name: torch.from_numpy(self._categorical(frame, name, timestamps))
                for name in self.spec.categorical}
        data["dense"] = torch.from_numpy(self.dense(frame))
        if self.history is not None:
            data.update(self.history.locate(frame["user_id"], timestamps))
        data.update(self._labels_and_oracle(frame))
        return data

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Refuse a frame that lacks a column the encoder reads, naming them all.

        Each column's type is checked where it is read (``_column``): ids must
        be integers, timestamps and dense values finite numbers.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"frame must be a DataFrame, got {type(frame).__name__}")
        read = [name for name in self.spec.categorical if name not in COMPUTED]
        needed = dict.fromkeys(["user_id", "item_id", "timestamp", *read, *self.spec.dense])
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            raise ValueError(f"frame is missing column(s) {missing}")

    @staticmethod
    def _column(frame: pd.DataFrame, name: str, kinds: str) -> np.ndarray:
        """Column ``name``'s values, refused unless its dtype is integer ("iu": ids) or
        a number ("iuf"); a bool, a string or an object column is neither."""
        column = frame[name]
        if column.dtype.kind not in kinds:
            what = "integer ids" if kinds == "iu" else "numbers"
            raise TypeError(f"column {name!r} must hold {what}, got dtype {column.dtype}")
        return column.to_numpy()

    def _timestamps(self, frame: pd.DataFrame) -> np.ndarray:
        values = self._column(frame, "timestamp", "iuf")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError("column 'timestamp' holds NaN or infinite values")
        return values

    # ----------------------------------------------------------------- dense
    def _raw_dense(self, frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for name in self.spec.dense:
            values = self._column(frame, name, "iuf").astype(np.float64, copy=False)
            if not np.isfinite(values).all():
                bad = int((~np.isfinite(values)).sum())
                raise ValueError(f"column {name!r} holds NaN or infinite values "
                                 f"({bad} of {len(values)} rows)")
            if name in self.log1p_columns:
                values = np.log1p(np.maximum(values, 0.0))
            columns.append(values)
        if not columns:
            return np.empty((len(frame), 0))
        return np.stack(columns, axis=1)

    def dense(self, frame: pd.DataFrame) -> np.ndarray:
        """(N, D) float32: log1p on counts, clip to training quantiles, then scale."""
        stats = self.statistics
        values = np.clip(self._raw_dense(frame), stats.low, stats.high)
        return ((values - stats.center) / stats.scale).astype(np.float32)

    # ----------------------------------------------------------- categorical
    def _categorical(self, frame: pd.DataFrame, name: str,
                     timestamps: np.ndarray) -> np.ndarray:
        if name == "surface":
            values = surface_codes(frame["surface"])
        elif name == "hour_of_day":
            values = (timestamps % SECONDS_PER_DAY) // 3600
        elif name == "category":
            values = self.item_category[self._column(frame, "item_id", "iu")]
        else:
            values = self._column(frame, name, "iu")
        values = np.array(values, dtype=np.int64)  # a writable copy for torch
        size = self.cardinalities[name]
        if values.size and (values.min() < 0 or values.max() >= size):
            raise ValueError(f"{name} has values outside [0, {size}): got {values.min()}..{values.max()}")
        return values

    # ------------------------------------------------------ labels and oracle
    def _labels_and_oracle(self, frame: pd.DataFrame) -> dict[str, torch.Tensor]:
        out = {}
        for task in self.spec.tasks:          # a real log has no oracle column p_<task>
            label = frame[task].to_numpy().astype(np.float32)
            if task == "conversion" and self.spec.conversion_observed_at is not None:
                reported_by = frame["conversion_timestamp"].to_numpy() <= self.spec.conversion_observed_at
                label = label * reported_by
            out[f"label_{task}"] = torch.from_numpy(label.astype(np.float32))
            if f"p_{task}" in frame.columns:
                oracle = np.array(frame[f"p_{task}"], dtype=np.float32)
                out[f"oracle_{task}"] = torch.from_numpy(oracle)
        return out


def sequence_events(logs: AdLogs | RatingLog, kind: str) -> pd.DataFrame:
    """The events of one kind of user sequence (``SEQUENCE_KINDS``), as ``EventHistory`` reads them.

    engagement: the organic events; ads: one event per click, save and hide of an
    earlier impression (action codes of ``AD_ACTIONS``), at the impression's time;
    search: the queries, with their category and no item (``NO_ITEM``).
    """
    checks.one_of("kind", kind, SEQUENCE_KINDS)
    if kind == "engagement":
        return logs.events
    if isinstance(logs, RatingLog):
        raise ValueError(f"a real log has only the engagement sequence, not {kind!r}")
    if kind == "search":
        if logs.searches is None:
            raise ValueError("this log has no search queries: simulate it with "
                             "AdLogConfig(searches_per_day=...) > 0")
        return logs.searches.assign(item_id=NO_ITEM, action=0)
    impressions = logs.impressions
    parts = []
    for code, action in enumerate(AD_ACTIONS):
        done = impressions[impressions[action] == 1]
        parts.append(pd.DataFrame({"user_id": done["user_id"], "item_id": done["item_id"],
                                   "action": np.int8(code), "timestamp": done["timestamp"]}))
    return pd.concat(parts, ignore_index=True)


def log_inputs(logs: AdLogs | RatingLog) -> tuple[dict[str, int], tuple[str, ...],
                                                  tuple[str, ...]]:
    """What a log offers an encoder: each categorical input's id-space size, the
    dense columns and the tasks (labels). A simulated log's follow from its config;
    a real one (``ranking.real.RatingLog``) states its own."""
    if isinstance(logs, AdLogs):
        return id_space_sizes(logs.config), DENSE, TASKS
    if isinstance(logs, RatingLog):
        return dict(logs.id_space_sizes), tuple(logs.dense), tuple(logs.tasks)
    raise TypeError(f"logs must be an AdLogs or a RatingLog, got {type(logs).__name__}")


def check_spec_against_log(spec: FeatureSpec, logs: AdLogs | RatingLog) -> dict[str, int]:
    """Refuse a spec that names an input or task the log lacks; the id-space sizes."""
    sizes, dense, tasks = log_inputs(logs)
    for what, names, allowed in (("categorical feature", spec.categorical, tuple(sizes)),
                                 ("dense feature", spec.dense, dense),
                                 ("task", spec.tasks, tasks)):
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise ValueError(f"unknown {what}(s) {unknown} for this log: allowed {allowed}")
    return sizes


def id_space_sizes(config: AdLogConfig) -> dict[str, int]:
    """How many values each categorical input can take in a log of ``config``."""
    return {"user_id": config.n_users, "item_id": config.n_items,
            "advertiser_id": config.n_advertisers, "surface": len(SURFACES),
            "is_video": 2, "hour_of_day": 24, "category": config.n_categories}


def time_split(impressions: pd.DataFrame, valid_days: float = 2.0, test_days: float = 2.0
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train on the past, validate on the next days, test on the last days.

    A random split would let a model see the future of every user; ads models
    are always judged on days after the ones they were trained on.
    """
    if valid_days < 0 or test_days <= 0:
        raise ValueError(f"need valid_days >= 0 and test_days > 0, got {valid_days}, {test_days}")
    end = impressions["timestamp"].max() + 1
    test_start = end - test_days * SECONDS_PER_DAY
    valid_start = test_start - valid_days * SECONDS_PER_DAY
    if valid_start <= impressions["timestamp"].min():
        raise ValueError("valid_days + test_days leave no training data")
    time = impressions["timestamp"]
    return (impressions[time < valid_start], impressions[(time >= valid_start) & (time < test_start)],
            impressions[time >= test_start])


def most_recent(frame: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The rows of the last ``fraction`` of the frame's time span: the data a team with less history has.

    Learning curves train on the most recent 1/8, 1/4, ... of the training days
    rather than a random sample, so every size ends on the same day and is
    judged on the same test days; a smaller size is simply a shorter history.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if len(frame) == 0:
        raise ValueError("the frame is empty")
    time = frame["timestamp"]
    start, end = time.min(), time.max() + 1
    return frame[time >= end - fraction * (end - start)]
