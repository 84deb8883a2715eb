"""Dense (numeric) inputs as a model sees them: raw, or normalized inside the model.

``ranking.features.FeatureSpec`` transforms dense columns before training
(log1p, clipping, standard or min-max scaling, with training-split statistics).
``DenseInput`` is the alternative that lives in the model: BatchNorm normalizes
each column with batch statistics (running averages at inference), LayerNorm
normalizes each row across its columns, Resilient Batch Norm is BatchNorm whose
running statistics skip broken batches (``ranking.nn.norm``). "none" passes the
input through.
"""

from __future__ import annotations

import torch
from torch import nn

from .norm import ResilientBatchNorm1d

NORMALIZATIONS = ("none", "batch", "layer", "resilient")
"""Values accepted by ``DenseInput(normalization=...)``."""


class DenseInput(nn.Module):
    """(B, n_dense) -> (B, n_dense): identity, BatchNorm1d, LayerNorm or ResilientBatchNorm1d."""

    def __init__(self, n_dense: int, normalization: str = "none"):
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if isinstance(n_dense, bool) or not isinstance(n_dense, int) or n_dense < 1:
            raise ValueError(f"n_dense must be a positive integer, got {n_dense!r}")
        self.normalization = normalization
        if normalization == "batch":
            self.norm = nn.BatchNorm1d(n_dense)
        elif normalization == "layer":
            self.norm = nn.LayerNorm(n_dense)
        elif normalization == "resilient":
            self.norm = ResilientBatchNorm1d(n_dense)
        else:
            self.norm = nn.Identity()

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return self.norm(dense)   # (B, n_dense)
