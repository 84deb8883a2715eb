"""Numbers as vectors: each dense feature embedded on its own, so a model can learn its shape.

A column that enters an MLP as one scalar can be bent only by the MLP's first
layers. Giving each column its own vector, a learned function of the value,
lets the model learn the transform itself (Gorishniy et al., NeurIPS 2022,
"On Embeddings for Numerical Features in Tabular Deep Learning").

- ``ScaledEmbedding``: x_d -> x_d * w_d + b_d, a line per column (AutoInt's form);
- ``PiecewiseLinear``: x_d -> its piecewise-linear encoding over training quantile
  bins, mapped by a per-column linear layer: any monotone or bumpy curve.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import checks


class ScaledEmbedding(nn.Module):
    """(B, D) numbers -> (B, D, E): column d's value times its vector, plus its bias."""

    def __init__(self, n_dense: int, dim: int):
        super().__init__()
        checks.positive_int("n_dense", n_dense)
        self.weight = nn.Parameter(0.1 * torch.randn(n_dense, dim))
        self.bias = nn.Parameter(torch.zeros(n_dense, dim))

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return dense.unsqueeze(-1) * self.weight + self.bias             # (B, D, E)


class PiecewiseLinear(nn.Module):
    """(B, D) numbers -> (B, D, E) via each value's piecewise-linear encoding (R bins).

    For bins [e_r, e_r+1) the encoding's r-th entry is how far x has come through
    bin r: 0 before it, 1 after it, (x - e_r) / (e_r+1 - e_r) inside (the first and
    last bins extend without a clamp, so values outside the training range still
    move the output). A per-column linear map turns the R entries into E.
    """

    def __init__(self, edges: torch.Tensor, dim: int):
        super().__init__()
        if edges.dim() != 2 or edges.shape[1] < 2:
            raise ValueError(f"edges must be (D, R + 1) with R >= 1, got {tuple(edges.shape)}")
        width = edges[:, 1:] - edges[:, :-1]                              # (D, R)
        if not bool((width > 0).all()):
            raise ValueError("edges must increase strictly along each row")
        n_dense, n_bins = width.shape
        self.register_buffer("left", edges[:, :-1].float())               # (D, R)
        self.register_buffer("width", width.float())                      # (D, R)
        self.weight = nn.Parameter(torch.randn(n_dense, n_bins, dim) / n_bins)
        self.bias = nn.Parameter(torch.zeros(n_dense, dim))

    def encode(self, dense: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, D, R): the piecewise-linear encoding."""
        t = (dense.unsqueeze(-1) - self.left) / self.width                # (B, D, R)
        inner = t[..., 1:-1].clamp(0, 1)
        first, last = t[..., :1].clamp(max=1), t[..., -1:].clamp(min=0)
        if t.shape[-1] == 1:
            return t
        return torch.cat([first, inner, last], dim=-1)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        codes = self.encode(dense)                                         # (B, D, R)
        return torch.einsum("bdr,dre->bde", codes, self.weight) + self.bias  # (B, D, E)
