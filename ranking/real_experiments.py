"""The book's claims on a real log (MovieLens-100k): the appendix's experiments.

Every model here is the one the chapters train on the simulated log, built
through the same API: ``FeatureEncoder`` with the real log's inputs, chapter 2's
trees on leakage-free historical rates, chapter 3's network, chapter 6's ladder
and chapter 7's calibrators. Only the scoring changes: no oracle, so held-out
log loss, AUC and NE, with intervals from a bootstrap over users
(``ranking.bootstrap``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import real
from .calibration import ContextualPlatt, PlattScaling
from .churn import flips_per_request
from .features import FeatureEncoder, FeatureSpec, most_recent, time_split
from .gbdt import GBDTClassifier, gbdt_features
from .metrics import field_ece
from .nn import EmbeddingMLP
from .nn.sequence import SequenceRanker
from .real import RatingLog
from .sequence_models import build_sequence_model
from .train import fit, predict

VALID_DAYS, TEST_DAYS = 21, 35
"""The last five weeks are the test period, the three before it validation."""
TRAINING = dict(epochs=10, patience=1, batch_size=1024, lr=1e-3, weight_decay=1e-4,
                start_at_base_rate=True)
"""How every network here trains (``fit`` keyword arguments); stops early on validation."""
GBDT_KEYS = {"user": ("user_id",), "item": ("item_id",),
             "user_x_genre": ("user_id", "category"),
             "occupation_x_item": ("occupation", "item_id"),
             "gender_x_item": ("gender", "item_id"), "age_x_genre": ("age_group", "category")}
"""The trees' historical like rates: per user, film, and user or user group by genre or film."""
LADDER = ("none", "sum", "interval", "transformer", "din", "long-short")
"""Chapter 6's ladder, from chapter 3's network without a sequence up to long-short."""
CONTEXTS = {"genre": ("category",), "occupation": ("occupation",),
            "genre + occupation": ("category", "occupation")}
"""The context fields of each context-aware Platt scaling."""


def real_spec(sequence_length: int = 32) -> FeatureSpec:
    """The encoder's spec for the real log: its own inputs and task, auto log1p."""
    return FeatureSpec(categorical=real.CATEGORICAL, dense=real.DENSE, tasks=real.TASKS,
                       log1p="auto", sequence_length=sequence_length)


@dataclass
class RealSplit:
    """The log split by time, the encoder fitted on the training weeks, and tensors."""

    log: RatingLog
    frames: dict[str, pd.DataFrame]          # train, valid, test
    encoder: FeatureEncoder
    data: dict[str, dict[str, torch.Tensor]]

    def labels(self, part: str = "test") -> np.ndarray:
        return self.frames[part]["like"].to_numpy()

    def users(self, part: str = "test") -> np.ndarray:
        return self.frames[part]["user_id"].to_numpy()


def split_log(log: RatingLog, sequence_length: int = 32) -> RealSplit:
    """Train on the past, validate on the next three weeks, test on the last five."""
    train, valid, test = time_split(log.impressions, VALID_DAYS, TEST_DAYS)
    frames = {"train": train, "valid": valid, "test": test}
    encoder = FeatureEncoder(log, real_spec(sequence_length)).fit(train)
    data = {part: encoder.transform(frame) for part, frame in frames.items()}
    return RealSplit(log, frames, encoder, data)


# ------------------------------------------------------------------ the models
def gbdt_rates(split: RealSplit) -> pd.DataFrame:
    """The trees' inputs for every rating; the prior is the training weeks' like rate."""
    prior = float(split.frames["train"]["like"].mean())
    return gbdt_features(split.log.impressions, prior, keys=GBDT_KEYS, label="like",
                         numeric=real.DENSE, flags=(),
                         categorical=("gender", "occupation", "age_group", "category"))


def gbdt_predictions(split: RealSplit, rates: pd.DataFrame, train: pd.DataFrame,
                     seed: int = 0) -> np.ndarray:
    """Chapter 2's trees trained on ``train``'s rows, stopped on validation: test probs."""
    valid, test = split.frames["valid"], split.frames["test"]
    trees = GBDTClassifier(seed=seed).fit(rates.loc[train.index], train["like"],
                                          rates.loc[valid.index], valid["like"])
    return trees.predict(rates.loc[test.index])


def train_network(name: str, split: RealSplit, train: dict[str, torch.Tensor],
                  seed: int, **fit_options) -> torch.nn.Module:
    """A rung of ``LADDER`` ("none": chapter 3's network) trained with ``TRAINING``."""
    torch.manual_seed(seed)
    encoder = split.encoder
    if name == "none":
        model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense, tasks=real.TASKS)
    else:
        model = build_sequence_model(name, encoder, split.log)
    history = None if name == "none" else encoder.history
    fit(model, train, split.data["valid"], history=history, tasks=real.TASKS, seed=seed,
        progress=False, **{**TRAINING, **fit_options})
    return model


def network_predictions(model: torch.nn.Module, split: RealSplit, part: str = "test"
                        ) -> np.ndarray:
    """The model's like probabilities on the validation or test weeks."""
    history = split.encoder.history if isinstance(model, SequenceRanker) else None
    return predict(model, split.data[part], history=history)["like"]


# ------------------------------------------------------------------ the claims
def since(log: RatingLog, start: int) -> RatingLog:
    """The log a team would hold had it started logging at ``start`` (seconds): the
    ratings from then on, with every count of earlier ratings counted from then."""
    impressions = real.with_rating_counts(
        log.impressions[log.impressions["timestamp"] >= start])
    events = log.events[log.events["timestamp"] >= start]
    return dataclasses.replace(log, impressions=impressions, events=events)


def learning_curve(split: RealSplit, fractions: Sequence[float], seeds: Sequence[int]
                   ) -> dict[tuple[str, float], np.ndarray]:
    """Claim 1: test predictions, (seeds, N), of the trees and of the network when
    the log starts ``fraction`` of the training weeks before the validation weeks.

    A shorter log is a shorter history for both models: the trees' like rates and
    the network's counts start counting at its first day, as they would for a team
    that had only logged that long. The validation and test weeks are the same.
    Neither model reads a user sequence, so none is built (sequence length 0).
    """
    curve = {}
    for fraction in tqdm(fractions, desc="training weeks", leave=False):
        start = most_recent(split.frames["train"], fraction)["timestamp"].min()
        short = split_log(since(split.log, int(start)), sequence_length=0)
        rates = gbdt_rates(short)
        curve["GBDT", fraction] = np.stack([
            gbdt_predictions(short, rates, short.frames["train"], seed) for seed in seeds])
        curve["DNN", fraction] = np.stack([
            network_predictions(train_network("none", short, short.data["train"], seed),
                                short) for seed in seeds])
    return curve


def sequence_ladder(split: RealSplit, seeds: Sequence[int], names: Sequence[str] = LADDER
                    ) -> dict[str, dict[str, np.ndarray]]:
    """Claim 5: every rung's predictions on validation and test, each (seeds, N)."""
    ladder = {}
    for name in tqdm(names, desc="sequence models", leave=False):
        models = [train_network(name, split, split.data["train"], seed) for seed in seeds]
        ladder[name] = {part: np.stack([network_predictions(model, split, part)
                                        for model in models])
                        for part in ("valid", "test")}
    return ladder


def calibrated(split: RealSplit, valid_probs: np.ndarray, test_probs: np.ndarray
               ) -> dict[str, np.ndarray]:
    """Claim 6: one run's test predictions as they are, Platt-scaled and context-aware
    Platt-scaled (``CONTEXTS``), every calibrator fitted on the validation weeks."""
    valid_y, valid_frame = split.labels("valid"), split.frames["valid"]
    test_frame = split.frames["test"]
    out = {"uncalibrated": test_probs,
           "Platt": PlattScaling().fit(valid_probs, valid_y).transform(test_probs)}
    for name, fields in CONTEXTS.items():
        platt = ContextualPlatt(fields).fit(valid_probs, valid_y, valid_frame)
        out[f"Platt by {name}"] = platt.transform(test_probs, test_frame)
    return out


def field_errors(labels: np.ndarray, predictions: dict[str, np.ndarray],
                 frame: pd.DataFrame) -> pd.DataFrame:
    """Field-level calibration error (against observed rates) of each prediction,
    per field: genre and occupation."""
    fields = {"genre": frame["category"].to_numpy(),
              "occupation": frame["occupation"].to_numpy()}
    return pd.DataFrame({field: {name: field_ece(labels, probs, values)
                                 for name, probs in predictions.items()}
                         for field, values in fields.items()})


def weekly_requests(frame: pd.DataFrame, min_candidates: int = 8
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each rating's request (one user's films on one day) and which requests hold
    at least ``min_candidates`` films to rank."""
    day = frame["timestamp"].to_numpy() // 86_400
    request = frame["user_id"].to_numpy() * 1_000 + (day - day.min())
    sizes = pd.Series(request).value_counts()
    return request, np.isin(request, sizes[sizes >= min_candidates].index)


def weekly_retrains(split: RealSplit, seeds: Sequence[int], weight: float = 3.0
                    ) -> dict[str, np.ndarray]:
    """Claim 11: last week's model and this week's, plain or distilled toward last
    week's scores (score regularization, ``weight``): test predictions, (seeds, N).

    Last week's trains on the training weeks but the last; this week's on the
    same window moved by a week (the first week out, the last one in). Each seed
    trains all three versions.
    """
    frame = split.frames["train"]
    week = (frame["timestamp"] - frame["timestamp"].min()) // (7 * 86_400)
    old_rows = split.encoder.transform(frame[week < week.max()])
    new_rows = split.encoder.transform(frame[week > 0])
    versions = {"last week": [], "this week": [], "this week, regularized": []}
    for seed in tqdm(seeds, desc="weekly retrains", leave=False):
        old = train_network("none", split, old_rows, seed)
        taught = {**new_rows, "teacher_like": torch.from_numpy(predict(old, new_rows)["like"])}
        new = train_network("none", split, new_rows, seed)
        regularized = train_network("none", split, taught, seed,
                                    distillation={"like": weight})
        for name, model in zip(versions, (old, new, regularized)):
            versions[name].append(network_predictions(model, split))
    return {name: np.stack(predictions) for name, predictions in versions.items()}


def churn_per_request(split: RealSplit, versions: dict[str, np.ndarray], k: int = 3
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The requests of the test weeks: each one's user, and per new version the share
    of its top-``k`` films that the version moves against last week's, (runs, requests)."""
    requests, kept = weekly_requests(split.frames["test"])
    requests = requests[kept]
    flips = {name: np.stack([flips_per_request(requests, old[kept], new[kept], k)[1]
                             for old, new in zip(versions["last week"], versions[name])])
             for name in ("this week", "this week, regularized")}
    return np.unique(requests) // 1_000, flips
