"""The whole ranker (chapter 10): what the chapters built one at a time, in one model.

Automatic numeric transforms (``FeatureSpec(log1p="auto")`` and a learned
piecewise-linear embedding of every number), three kinds of user sequence, a
Closeup-style model (``ranking.nn.closeup``) and chapter 4's recipe for rare
heads. ``build_closeup`` and ``train_closeup`` make the model the chapter, the
experiment and the claim tests all train; ``ABLATIONS`` names each part taken away.
"""

from __future__ import annotations

import torch

from .checks import TensorDict
from .features import AD_ACTIONS, SEQUENCE_KINDS, FeatureEncoder, FeatureSpec
from .nn.closeup import Closeup, GroupTokens, SequenceTokens
from .nn.sequence import PARTS, EventEmbedding
from .objective import entropy_weights
from .simulate import ACTIONS, AdLogs
from .train import FitResult, fit
from .transforms import quantile_edges

TASKS = ("click", "save", "hide", "conversion")
"""The heads of the whole ranker: the actions its utility blends."""
TASK_MASKS = {"conversion": "label_click"}
"""The conversion is learned on clicked rows only (a rate per click)."""
GROUPS = {
    "user": ("user_id", "user_follower_count", "user_engagement_count"),
    "item": ("item_id", "advertiser_id", "category", "is_video", "item_save_count",
             "item_age_days", "advertiser_budget"),
    "context": ("surface", "hour_of_day", "context_similarity", "query_match"),
}
"""The feature groups the summarization layer makes one token each of."""
WORLD = dict(searches_per_day=2.0)
"""The log of this chapter: the book's world with the search log on (two queries a day)."""
WHOLE = dict(kinds=SEQUENCE_KINDS, mixer="transformer", numbers="piecewise",
             log1p="auto", n_experts=4)
"""The whole ranker's parts (``build_closeup`` and ``encoder_spec`` options)."""
ABLATIONS = {
    "the whole ranker": {},
    "without the search sequence": dict(kinds=("engagement", "ads")),
    "without the ads sequence": dict(kinds=("engagement", "search")),
    "without the engagement sequence": dict(kinds=("ads", "search")),
    "concatenated tokens, no mixer": dict(mixer="concat"),
    "hand-chosen transforms": dict(numbers="scaled", log1p=True),
    "one expert (a shared bottom)": dict(n_experts=1),
}
"""Each part taken away, one at a time: the rows of the chapter's ablation table."""
TRAINING = dict(epochs=10, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4,
                start_at_base_rate=True)
"""How the whole ranker trains (``fit`` keyword arguments), with ``task_weights``."""
CONVERSION_SHARE = 0.2
"""The conversion trains at this share of its entropy weight. At its full weight (or four
times it, chapter 4's boost for rare heads) it cost the click of this model 10 to 25
points of the gap on search on the moderate log, where the click on search depends on
parts (the query's relevance, the search sequence) that the conversion does not."""
SEQUENCE_LENGTH = 32


def encoder_spec(kinds=WHOLE["kinds"], log1p=WHOLE["log1p"], **_) -> FeatureSpec:
    """The features a variant reads: its sequence kinds and its rule for log1p."""
    return FeatureSpec(sequence_length=SEQUENCE_LENGTH, sequence_kinds=kinds,
                       tasks=TASKS, log1p=log1p)


def build_closeup(encoder: FeatureEncoder, logs: AdLogs, train: TensorDict, *,
                  kinds=WHOLE["kinds"], mixer: str = WHOLE["mixer"],
                  numbers: str = WHOLE["numbers"], n_experts: int = WHOLE["n_experts"],
                  dim: int = 32, event_dim: int = 16, **_) -> Closeup:
    """A Closeup model for ``encoder``'s inputs (its ``sequence_kinds`` among ``kinds``).

    numbers: "piecewise" (learned piecewise-linear embeddings, bins at the
    training quantiles of ``train["dense"]``) or "scaled" (a line per column).
    """
    if numbers not in ("piecewise", "scaled"):
        raise ValueError(f"numbers must be 'piecewise' or 'scaled', got {numbers!r}")
    missing = set(kinds) - set(encoder.spec.sequence_kinds)
    if missing:
        raise ValueError(f"the encoder gathers no {sorted(missing)} sequence: build it "
                         "with encoder_spec(kinds=...)")
    edges = quantile_edges(train["dense"]) if numbers == "piecewise" else None
    groups = GroupTokens(encoder.cardinalities, encoder.spec.dense, GROUPS, dim,
                         edges=edges)
    sequences = {kind: SequenceTokens(_events(kind, logs, event_dim), dim,
                                      "" if kind == "engagement" else f"{kind}_")
                 for kind in kinds}
    return Closeup(groups, sequences, encoder.spec.tasks, dim, mixer=mixer,
                   n_experts=n_experts)


def _events(kind: str, logs: AdLogs, dim: int) -> EventEmbedding:
    """How one kind's events are embedded: a search query is its category alone."""
    config = logs.config
    pretrained = torch.tensor(logs.item_embeddings, dtype=torch.float32)
    actions = {"engagement": len(ACTIONS), "ads": len(AD_ACTIONS), "search": 1}[kind]
    parts = ("category",) if kind == "search" else PARTS
    return EventEmbedding(config.n_items, config.n_categories, actions, pretrained,
                          dim=dim, interactions=True, parts=parts)


def train_closeup(encoder: FeatureEncoder, logs: AdLogs, train: TensorDict,
                  valid: TensorDict, *, seed: int, progress: bool = False,
                  **options) -> tuple[Closeup, FitResult]:
    """Build (``build_closeup`` options) and train with chapter 4's recipe, adapted.

    Heads start at their base rate; losses are weighted by base-rate entropy,
    the conversion at ``CONVERSION_SHARE`` of its weight and without chapter 4's
    boost of rare tasks (which cost this model's click more than it gave the
    save); early stopping watches the weighted validation loss.
    """
    torch.manual_seed(seed)
    model = build_closeup(encoder, logs, train, **options)
    weights = entropy_weights(train, TASKS, TASK_MASKS)
    weights["conversion"] *= CONVERSION_SHARE
    result = fit(model, train, valid, history=encoder.history, tasks=TASKS,
                 task_masks=TASK_MASKS, task_weights=weights, monitor=weights,
                 seed=seed, progress=progress, **TRAINING)
    return model, result
