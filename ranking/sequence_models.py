"""Chapter 6's sequence models by name: the ladder from sum pooling to long-short.

Every model is a ``SequenceRanker`` (chapter 3's network plus a summary of the
user's events); they differ in the summarizer, and in the ablations in how an
event is built. ``build_sequence_model`` makes one from the encoder and the log,
so the chapter, the experiments and the claim tests build exactly the same models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .checks import TensorDict
from .features import FeatureEncoder, log_inputs
from .nn.sequence import (PARTS, EventEmbedding, IntervalSumPooling, LongShort,
                          SequenceRanker, SumPooling, TargetAttention, TimeAwareTransformer)
from .real import RatingLog
from .simulate import ACTIONS, AdLogs
from .train import FitResult, fit

LADDER = ("sum", "interval", "transformer", "transformer + fusion", "din",
          "long-short")
"""The architectures of chapter 6, from the cheapest summary to the richest."""

TRAINING = dict(epochs=10, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4,
                start_at_base_rate=True)
"""How every sequence model of the chapter trains (``fit`` keyword arguments)."""


def build_summarizer(name: str, dim: int, *, layers: int = 1, heads: int = 1,
                     positions: str = "time", short_length: int = 8) -> nn.Module:
    """The summary of a user's events that names a rung of ``LADDER``.

    long-short is DIN over every event beside DIN over the latest
    ``short_length``: two target attentions, one for long-term taste, one for
    the current interest.
    """
    if name == "sum":
        return SumPooling(dim)
    if name == "interval":
        return IntervalSumPooling(dim)
    if name in ("transformer", "transformer + fusion"):
        return TimeAwareTransformer(dim, layers=layers, heads=heads,
                                    positions=positions,
                                    early_fusion=name == "transformer + fusion")
    if name == "din":
        return TargetAttention(dim)
    if name == "long-short":
        return LongShort(TargetAttention(dim), TargetAttention(dim), short_length)
    raise ValueError(f"unknown sequence model {name!r}: choose from {LADDER}")


def build_sequence_model(name: str, encoder: FeatureEncoder, logs: AdLogs | RatingLog, *,
                         dim: int = 16, connection: str = "sum",
                         interactions: bool = True, parts: Sequence[str] = PARTS,
                         **summarizer_options) -> SequenceRanker:
    """A ``SequenceRanker`` for ``encoder``'s inputs with the summarizer ``name``.

    dim: the width of every event vector (and of the ID embeddings).
    connection, interactions, parts: how an event is built (``EventEmbedding``).
    summarizer_options: layers, heads, positions, short_length (``build_summarizer``).
    """
    if encoder.history is None:
        raise ValueError("the encoder has no sequence: use FeatureSpec(sequence_length=L)"
                         " with L > 0")
    sizes, _, _ = log_inputs(logs)
    pretrained = torch.tensor(logs.item_embeddings, dtype=torch.float32)
    events = EventEmbedding(sizes["item_id"], sizes["category"], len(ACTIONS),
                            pretrained, dim=dim, connection=connection,
                            interactions=interactions, parts=parts)
    summarizer = build_summarizer(name, dim, **summarizer_options)
    return SequenceRanker(encoder.cardinalities, encoder.n_dense, events, summarizer,
                          tasks=encoder.spec.tasks, embedding_dim=dim)


def train_sequence_model(name: str, encoder: FeatureEncoder, logs: AdLogs | RatingLog,
                         train: TensorDict, valid: TensorDict, *, seed: int,
                         progress: bool = False, **options) -> tuple[SequenceRanker, FitResult]:
    """Build ``name`` (``build_sequence_model`` options) and train it with ``TRAINING``.

    The model is seeded with ``seed``, trains on ``encoder``'s tasks, gathers
    every batch's events from ``encoder.history`` and stops early on ``valid``.
    """
    torch.manual_seed(seed)
    model = build_sequence_model(name, encoder, logs, **options)
    result = fit(model, train, valid, history=encoder.history, tasks=encoder.spec.tasks,
                 seed=seed, progress=progress, **TRAINING)
    return model, result
