"""DCN V2's cross network: explicit feature crosses, one degree higher per layer."""

from __future__ import annotations

import torch
from torch import nn

from .. import checks


class CrossNetV2(nn.Module):
    """x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, for l = 0 .. num_layers - 1 (Wang et al., WWW 2021).

    Each layer multiplies the input x_0 elementwise by a linear map of the
    current x_l, so after l layers the output holds feature crosses up to
    degree l + 1; the residual ``+ x_l`` keeps every lower degree. An MLP has to
    approximate a product like x_i * x_j with many ReLUs; one cross layer
    represents it exactly. Input and output are (B, X).
    """

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        checks.positive_int("input_dim", input_dim)
        checks.nonnegative_int("num_layers", num_layers)
        self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0                             # (B, X)
        for linear in self.layers:
            x = x0 * linear(x) + x         # (B, X) * (B, X) + (B, X)
        return x                           # (B, X)
