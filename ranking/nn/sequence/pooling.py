"""Pooling a user's events into one vector: the cheap summaries.

Every summarizer in ``ranking.nn.sequence`` takes the same inputs (the event
vectors (B, L, V), the mask of real events (B, L), the candidate's vector
(B, V) and each event's age in hours (B, L)) and returns (B, Z), Z = output_dim.
Padding vectors are zero (``EventEmbedding`` masks them), but every summarizer
masks again, so none depends on that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SumPooling(nn.Module):
    """The sum of the user's event vectors: sum_j mask_j * e_j, (B, V)."""

    def __init__(self, dim: int):
        super().__init__()
        self.output_dim = dim

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        return (events * mask.unsqueeze(-1)).sum(dim=1)               # (B, V)


class IntervalSumPooling(nn.Module):
    """Sum pooling within time intervals, concatenated: (B, V * K) for K intervals.

    With bounds (1, 24, 168) hours the intervals are the last hour, the rest of
    the day, the rest of the week and everything older: the model sees what the
    user did recently apart from what they did long ago, at the cost of a sum.
    """

    def __init__(self, dim: int, bounds_hours: Sequence[float] = (1.0, 24.0, 168.0)):
        super().__init__()
        if list(bounds_hours) != sorted(bounds_hours) or any(b <= 0 for b in bounds_hours):
            raise ValueError(f"bounds_hours must be positive and increasing, got {bounds_hours!r}")
        self.register_buffer("bounds", torch.tensor(list(bounds_hours), dtype=torch.float32))
        self.n_intervals = len(bounds_hours) + 1
        self.output_dim = dim * self.n_intervals

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        interval = torch.bucketize(delta_hours.float(), self.bounds, right=True)   # (B, L)
        sums = []
        for k in range(self.n_intervals):
            inside = mask & (interval == k)                                          # (B, L)
            sums.append((events * inside.unsqueeze(-1)).sum(dim=1))                   # (B, V)
        return torch.cat(sums, dim=1)                                                # (B, V * K)
