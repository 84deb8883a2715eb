"""A Transformer over the user's events, with time-delta positions and optional early fusion.

The sequence write-up's baseline: self-attention over the sequence, each event tagged with
how long ago it happened. With ``early_fusion`` the candidate ad joins the
sequence as one more token, so every event is compared with it inside the
attention, not only after the sequence is squeezed into one vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ... import checks
from .events import TimeDeltaEmbedding

POSITIONS = ("time", "order", "none")
"""What tells the Transformer where an event sits: its age (time-delta buckets), its
rank in the sequence (1st most recent, 2nd, ...), or nothing."""


class SelfAttention(nn.Module):
    """Multi-head self-attention that gives padding exactly zero weight: (B, L, V) -> (B, L, V)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        (B, L, V), A = x.shape, self.heads                                     # A heads
        q, k, v = self.qkv(x).split(V, dim=2)                                 # 3 x (B, L, V)
        q, k, v = (t.view(B, L, A, V // A).transpose(1, 2)
                   for t in (q, k, v))                                         # (B, A, L, V/A)
        scores = q @ k.transpose(-2, -1) / math.sqrt(V // A)                   # (B, A, L, L)
        # The dtype's smallest number, not -inf (a row of -inf is NaN) nor -1e9 (overflows
        # fp16): after the softmax a padding key weighs exactly 0 next to any real key.
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)                                # (B, A, L, L)
        mixed = (weights @ v).transpose(1, 2).reshape(B, L, V)                 # (B, L, V)
        return self.out(mixed)


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), mask)                            # (B, L, V)
        return x + self.mlp(self.norm2(x))                                     # (B, L, V)


class TimeAwareTransformer(nn.Module):
    """Events (+ positions) -> Transformer blocks -> [first output, mean of event outputs]: (B, 2V).

    The first output is the candidate's token with ``early_fusion``, else the
    most recent event's. Outputs of padding slots never reach the summary, and
    a user without events gets zeros from the mean.
    """

    def __init__(self, dim: int, layers: int = 1, heads: int = 1, positions: str = "time",
                 early_fusion: bool = False, max_length: int = 512):
        super().__init__()
        checks.one_of("positions", positions, POSITIONS)
        checks.positive_int("layers", layers)
        self.positions, self.early_fusion = positions, early_fusion
        if positions == "time":
            self.position = TimeDeltaEmbedding(dim)
        elif positions == "order":
            self.position = nn.Embedding(max_length, dim)
            nn.init.normal_(self.position.weight, std=0.01)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.output_dim = 2 * dim

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        B, L, _ = events.shape
        x = events                                                             # (B, L, V)
        if self.positions == "time":
            x = x + self.position(delta_hours)
        elif self.positions == "order":
            x = x + self.position(torch.arange(L, device=x.device)).unsqueeze(0)
        if self.early_fusion:                           # the candidate is token 0, never padding
            x = torch.cat([candidate.unsqueeze(1), x], dim=1)                  # (B, 1 + L, V)
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for block in self.blocks:
            x = block(x, mask)
        x = self.norm(x)
        if self.early_fusion:
            first, x, mask = x[:, 0], x[:, 1:], mask[:, 1:]                    # (B, V), (B, L, V)
        else:
            first = x[:, 0] * mask[:, :1]                                      # most recent event
        weight = mask.unsqueeze(-1).to(x.dtype)                                # (B, L, 1)
        mean = (x * weight).sum(1) / weight.sum(1).clamp(min=1)                # (B, V)
        return torch.cat([first, mean], dim=1)                                 # (B, 2V)
