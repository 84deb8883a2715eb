"""DCN V2's cross network: explicit feature crosses, one degree higher per layer."""

from __future__ import annotations

import torch
from torch import nn


class CrossNetV2(nn.Module):
    """x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, for l = 0 .. num_layers - 1 (Wang et al., WWW 2021).

    Each layer multiplies the input x_0 elementwise by a linear map of the
    current x_l, so after l layers the output holds feature crosses up to
    degree l + 1; the residual ``+ x_l`` keeps every lower degree. An MLP has to
    approximate a product like x_i * x_j with many ReLUs; one cross layer
    represents it exactly. Input and output are (B, input_dim).
    """

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        if isinstance(input_dim, bool) or not isinstance(input_dim, int) or input_dim < 1:
            raise ValueError(f"input_dim must be a positive integer, got {input_dim!r}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be a non-negative integer, got {num_layers!r}")
        self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0                             # (B, D)
        for linear in self.layers:
            x = x0 * linear(x) + x         # (B, D) * (B, D) + (B, D)
        return x                           # (B, D)
