"""DIN's target attention: weigh each event by how it relates to the candidate (Zhou et al., KDD 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..mlp import MLP


class TargetAttention(nn.Module):
    """sum_j mask_j * a(e_j, c) * e_j, with a(e, c) = MLP([e, c, e - c, e * c]) -> a scalar: (B, V).

    The weights are not normalized (no softmax), as in the DIN paper: a user
    with many events like the candidate gets a larger vector than a user with
    one, so the strength of an interest survives the pooling.

    The MLP's first layer on the concatenation [e, c, e - c, e * c] is
    W1 e + W2 c + W3 (e - c) + W4 (e * c) = (W1 + W3) e + (W2 - W3) c + W4 (e * c):
    three smaller linear maps, and c's term is computed once per row, not once
    per event. Same function, about half the work.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (32,)):
        super().__init__()
        width = hidden[0]
        self.event_term = nn.Linear(dim, width)
        self.candidate_term = nn.Linear(dim, width, bias=False)
        self.product_term = nn.Linear(dim, width, bias=False)
        rest = MLP(width, hidden[1:]) if len(hidden) > 1 else nn.Identity()
        self.score = nn.Sequential(nn.ReLU(), rest, nn.Linear(hidden[-1], 1))
        self.output_dim = dim

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        first_layer = (self.event_term(events)                          # (B, L, W)
                       + self.candidate_term(candidate).unsqueeze(1)    # (B, 1, W)
                       + self.product_term(events * candidate.unsqueeze(1)))
        weight = self.score(first_layer).squeeze(-1) * mask             # (B, L)
        return (weight.unsqueeze(-1) * events).sum(dim=1)               # (B, V)
