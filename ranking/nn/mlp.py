"""The multi-layer perceptron every deep ranking model ends with."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import checks


class MLP(nn.Module):
    """Linear -> activation (-> dropout) for each width in ``hidden``: (B, in_dim) -> (B, H = hidden[-1])."""

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float = 0.0,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        checks.positive_int("in_dim", in_dim)
        if len(hidden) == 0 or not all(checks.is_integer(h) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive integers, got {hidden!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        widths = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), activation()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.output_dim = hidden[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)   # (B, in_dim) -> (B, H)
