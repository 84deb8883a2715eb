"""Events as vectors: what the log records about each engagement, joined into one vector.

An event is the item a user engaged with (its id and its pretrained embedding),
the item's category (taxonomy) and the action (closeup, click, save), and it
happened some hours before the impression. The candidate ad is embedded with
the same tables, so a model can compare it with every event.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ... import checks

PARTS = ("item", "category", "action", "pretrained")
"""What an event can be made of: its item id, the item's category, the action, and the
item's frozen pretrained embedding."""
CONNECTIONS = ("sum", "concat")
"""How an event's parts are joined: summed (each part already has the event's width) or
concatenated and mapped to that width by a linear layer (the write-up's "feature connection")."""


class EventEmbedding(nn.Module):
    """(B, L) event ids -> (B, L, V) event vectors and the (B, L) mask of real events (V = dim).

    Sequence slots hold ids shifted by one, so 0 is padding (no event). Each part
    of an event (item, category, action, pretrained embedding) becomes a
    ``dim``-wide vector; ``connection`` sums them, or concatenates them and maps
    the result to ``dim``. With ``interactions`` every event also carries how it
    relates to the candidate ad, the write-up's "extra feature interaction": the
    cosine of their pretrained embeddings and whether their categories agree.
    ``parts`` keeps a subset of ``PARTS`` (to measure what each is worth).
    """

    def __init__(self, n_items: int, n_categories: int, n_actions: int, pretrained: torch.Tensor,
                 dim: int = 32, connection: str = "sum", interactions: bool = False,
                 parts: Sequence[str] = PARTS):
        super().__init__()
        unknown = set(parts) - set(PARTS)
        if not parts or unknown:
            raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {parts!r}")
        checks.one_of("connection", connection, CONNECTIONS)
        if pretrained.dim() != 2 or pretrained.shape[0] != n_items:
            raise ValueError(f"pretrained must be ({n_items}, P), one row per item; "
                             f"got {tuple(pretrained.shape)}")
        self.dim, self.connection, self.interactions = dim, connection, interactions
        self.parts = tuple(part for part in PARTS if part in parts)
        self.candidate_action = n_actions + 1          # the candidate: "shown", not yet engaged
        self.item = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.category = nn.Embedding(n_categories + 1, dim, padding_idx=0)
        self.action = nn.Embedding(n_actions + 2, dim, padding_idx=0)
        for table in (self.item, self.category, self.action):
            nn.init.normal_(table.weight, std=0.01)
            table.weight.data[0] = 0.0
        # Frozen pretrained vectors, row 0 for padding: a buffer, not a parameter, and
        # not saved with the weights (it comes with the log).
        padded = torch.cat([torch.zeros(1, pretrained.shape[1]), pretrained.float()])
        self.register_buffer("pretrained", F.normalize(padded, dim=1), persistent=False)
        if "pretrained" in self.parts:
            self.pretrained_projection = nn.Linear(pretrained.shape[1], dim)
        n_parts = len(self.parts)
        if interactions:
            self.interaction_projection = nn.Linear(2, dim)
            n_parts += 1
        self.join = nn.Linear(n_parts * dim, dim) if connection == "concat" else None

    def forward(self, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        items = batch["seq_item_id"]                          # (B, L), 0 = padding
        parts = self._parts(items, batch["seq_category"], batch["seq_action"])
        if self.interactions:
            candidate = self.pretrained[batch["item_id"] + 1]        # (B, P), unit
            cosine = (self.pretrained[items] * candidate[:, None, :]).sum(-1)  # (B, L)
            same = batch["seq_category"] == (batch["category"] + 1)[:, None]  # (B, L)
            pair = torch.stack([cosine, same.to(cosine.dtype)], dim=-1)   # (B, L, 2)
            parts.append(self.interaction_projection(pair))             # (B, L, V)
        # (B, L): a real event has an item; events without one (a search query)
        # are told from padding by their category, when the item is not a part
        identity = items if "item" in self.parts else batch["seq_category"]
        mask = identity > 0
        return self.connect(parts) * mask.unsqueeze(-1), mask

    def candidate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The candidate item as an event of its own, in the same space: (B, V)."""
        item = batch["item_id"] + 1
        parts = self._parts(item, batch["category"] + 1, torch.full_like(item, self.candidate_action))
        if self.interactions:                     # a candidate is identical to itself
            parts.append(self.interaction_projection(parts[0].new_ones(item.shape[0], 2)))
        return self.connect(parts)

    def _parts(self, item: torch.Tensor, category: torch.Tensor, action: torch.Tensor) -> list:
        vectors = []
        if "item" in self.parts:
            vectors.append(self.item(item))                            # (..., V)
        if "category" in self.parts:
            vectors.append(self.category(category))
        if "action" in self.parts:
            vectors.append(self.action(action))
        if "pretrained" in self.parts:
            # Project the whole table once (items << events in a batch), then look up.
            vectors.append(self.pretrained_projection(self.pretrained)[item])
        return vectors

    def connect(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """An event's parts as one vector: their sum, or their join mapped to V."""
        if self.join is None:
            return sum(parts[1:], parts[0])                            # (..., V)
        return self.join(torch.cat(parts, dim=-1))                     # (..., V)


class TimeDeltaEmbedding(nn.Module):
    """Hours since an event -> a learned vector per log2 bucket: 0-1 h, 1-3 h, 3-7 h, ... (B, L, V).

    The position of an event in a user's sequence says little (a heavy user's
    tenth event is an hour old, a light user's a week); how long ago it happened
    says what a model needs to weigh recent interest against old.
    """

    def __init__(self, dim: int, max_hours: float = 24 * 365):
        super().__init__()
        self.n_buckets = int(math.log2(1 + max_hours)) + 1
        self.table = nn.Embedding(self.n_buckets, dim)
        nn.init.normal_(self.table.weight, std=0.01)

    def buckets(self, delta_hours: torch.Tensor) -> torch.Tensor:
        """floor(log2(1 + hours)), capped at the last bucket."""
        bucket = torch.log2(1 + delta_hours.float().clamp(min=0)).floor().long()
        return bucket.clamp(max=self.n_buckets - 1)

    def forward(self, delta_hours: torch.Tensor) -> torch.Tensor:
        return self.table(self.buckets(delta_hours))
