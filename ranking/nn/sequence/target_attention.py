"""DIN's target attention: weigh each event by how it relates to the candidate (Zhou et al., KDD 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..mlp import MLP


class TargetAttention(nn.Module):
    """sum_j mask_j * a(e_j, c) * e_j, with a(e, c) = MLP([e, c, e - c, e * c]) -> a scalar: (B, D).

    The weights are not normalized (no softmax), as in the DIN paper: a user
    with many events like the candidate gets a larger vector than a user with
    one, so the strength of an interest survives the pooling.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (32,)):
        super().__init__()
        self.score = nn.Sequential(MLP(4 * dim, hidden), nn.Linear(hidden[-1], 1))
        self.output_dim = dim

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        target = candidate.unsqueeze(1).expand_as(events)                       # (B, L, D)
        pairs = torch.cat([events, target, events - target, events * target], dim=-1)
        weight = self.score(pairs).squeeze(-1) * mask                           # (B, L)
        return (weight.unsqueeze(-1) * events).sum(dim=1)                       # (B, D)
