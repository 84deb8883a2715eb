"""A Closeup-style ranker: feature groups and user sequences as tokens, a Transformer mixer, MMoE heads.

The Closeup write-up's architecture, in four layers:

1. representation: every id is embedded, every number embedded on its own
   (``ranking.nn.numeric``);
2. summarization: similar features are compressed into one token per group
   (user, item, context: ``GroupTokens``) and each kind of user sequence into two
   (``SequenceTokens``: target attention over all its events and over the latest);
3. a mixer: self-attention over the Q tokens, so every group can read every
   other one (``mixer="concat"`` skips it and concatenates the tokens instead);
4. MMoE heads: experts and one gate per task over the mixed tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import checks
from .embed import FeatureEmbedding
from .multitask import MixtureOfExperts
from .numeric import PiecewiseLinear, ScaledEmbedding
from .sequence import EventEmbedding, LongShort, TargetAttention, TimeDeltaEmbedding
from .sequence.transformer import Block

MIXERS = ("transformer", "concat")
"""How the tokens meet: self-attention over them, or side by side (concatenated)."""


class GroupTokens(nn.Module):
    """Each group of features (ids and numbers) -> one token: (B, G, V).

    groups: {group name: the names of its fields}, every field being a key of
    ``cardinalities`` or one of ``dense_names``. A group's members are embedded
    (E wide each), concatenated and mapped to one V-wide token.
    """

    def __init__(self, cardinalities: dict[str, int], dense_names: Sequence[str],
                 groups: dict[str, Sequence[str]], dim: int, field_dim: int = 16,
                 edges: torch.Tensor | None = None):
        super().__init__()
        dense_names = tuple(dense_names)
        members = [name for fields in groups.values() for name in fields]
        unknown = sorted(set(members) - set(cardinalities) - set(dense_names))
        if unknown:
            raise ValueError(f"groups name unknown feature(s) {unknown}")
        self.ids = FeatureEmbedding(cardinalities, field_dim)             # (B, F, E)
        self.numbers = (PiecewiseLinear(edges, field_dim) if edges is not None
                        else ScaledEmbedding(len(dense_names), field_dim))  # (B, D, E)
        order = list(self.ids.fields) + list(dense_names)                 # F + D slots
        self.index = {group: torch.tensor([order.index(name) for name in fields])
                      for group, fields in groups.items()}
        self.project = nn.ModuleDict({group: nn.Linear(len(fields) * field_dim, dim)
                                      for group, fields in groups.items()})

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids = self.ids(batch)                                         # (B, F, E)
        numbers = self.numbers(batch["dense"])                        # (B, D, E)
        vectors = torch.cat([ids, numbers], dim=1)                    # (B, F + D, E)
        tokens = [project(vectors[:, self.index[group]].flatten(1))   # (B, V) each
                  for group, project in self.project.items()]
        return torch.stack(tokens, dim=1)                             # (B, G, V)


class SequenceTokens(nn.Module):
    """One kind of user sequence -> 2 tokens: target attention over all its events and
    over the latest ``short_length`` (chapter 6's long-short), each mapped to V: (B, 2, V).

    Each event vector (Z wide, Z = ``events.dim``) carries how long ago it
    happened, so the attention can prefer the latest query over an old one.
    ``prefix`` picks the kind's keys in the batch ("" for the engagement
    sequence, "search_" for the search queries, ...).
    """

    def __init__(self, events: EventEmbedding, dim: int, prefix: str = "",
                 short_length: int = 8):
        super().__init__()
        self.events, self.prefix = events, prefix
        width = events.dim
        self.age = TimeDeltaEmbedding(width)
        self.summary = LongShort(TargetAttention(width), TargetAttention(width), short_length)
        self.project = nn.Linear(width, dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        view = batch if not self.prefix else {
            **batch, **{key[len(self.prefix):]: value for key, value in batch.items()
                        if key.startswith(self.prefix + "seq_")}}
        events, mask = self.events(view)                  # (B, L, Z), (B, L)
        hours = view["seq_delta_hours"]                   # (B, L)
        events = events + self.age(hours) * mask.unsqueeze(-1)        # (B, L, Z)
        candidate = self.events.candidate(view)                       # (B, Z)
        summary = self.summary(events, mask, candidate, hours)        # (B, 2Z)
        return self.project(summary.view(summary.shape[0], 2, -1))    # (B, 2, V)


class Closeup(nn.Module):
    """[group tokens, sequence tokens] -> mixer -> flattened -> MMoE: a logit per task.

    Q = G + 2 * (kinds of sequence) tokens, each V wide.
    """

    def __init__(self, groups: GroupTokens, sequences: dict[str, SequenceTokens],
                 tasks: Sequence[str], dim: int, mixer: str = "transformer",
                 layers: int = 1, heads: int = 2, n_experts: int = 4):
        super().__init__()
        checks.one_of("mixer", mixer, MIXERS)
        self.groups = groups
        self.sequences = nn.ModuleDict(sequences)
        n_tokens = len(groups.project) + 2 * len(sequences)
        self.mixer = mixer
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers)
                                    ) if mixer == "transformer" else nn.ModuleList()
        self.norm = nn.LayerNorm(dim)
        self.heads = MixtureOfExperts(n_tokens * dim, tasks, n_experts)
        self.tasks = self.heads.tasks

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = [self.groups(batch)]                                 # (B, G, V)
        tokens += [kind(batch) for kind in self.sequences.values()]   # (B, 2, V) each
        x = torch.cat(tokens, dim=1)                                  # (B, Q, V)
        every = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        for block in self.blocks:                       # none with mixer="concat"
            x = block(x, every)                                       # (B, Q, V)
        x = self.norm(x)
        return self.heads(x.flatten(1))                               # {task: (B,)}
