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

from .. import checks
from .norm import ResilientBatchNorm1d

NORMALIZATIONS = ("none", "batch", "layer", "resilient")
"""Values accepted by ``DenseInput(normalization=...)``."""


class DenseInput(nn.Module):
    """(B, D) -> (B, D): identity, BatchNorm1d, LayerNorm or ResilientBatchNorm1d."""

    def __init__(self, n_dense: int, normalization: str = "none"):
        super().__init__()
        checks.one_of("normalization", normalization, NORMALIZATIONS)
        checks.positive_int("n_dense", n_dense)
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
        return self.norm(dense)   # (B, D)
