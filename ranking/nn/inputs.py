"""What every deep ranking model reads first: each id's embedding and the dense features, as one vector."""

from __future__ import annotations

import torch
from torch import nn

from .. import checks
from .dense import NORMALIZATIONS, DenseInput
from .embed import FeatureEmbedding


class ModelInput(nn.Module):
    """ids -> one embedding per field, flattened, beside the dense features: (B, X = F * E + D).

    dense_normalization (one of ``NORMALIZATIONS``) normalizes batch["dense"]
    inside the model (see ``DenseInput``); a model without dense features
    (n_dense=0) reads the embeddings alone.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, embedding_dim: int = 16,
                 dense_normalization: str = "none"):
        super().__init__()
        self.n_dense = checks.nonnegative_int("n_dense", n_dense)
        checks.one_of("dense_normalization", dense_normalization, NORMALIZATIONS)
        self.embedding = FeatureEmbedding(cardinalities, embedding_dim)
        self.dense_input = DenseInput(n_dense, dense_normalization) if n_dense else None
        self.output_dim = self.embedding.output_dim + n_dense

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embedding(batch).flatten(1)            # (B, F * E)
        if self.dense_input is not None:
            dense = self.dense_input(batch["dense"])    # (B, D)
            x = torch.cat([x, dense], dim=1)            # (B, X)
        return x

