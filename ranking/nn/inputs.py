"""What every deep ranking model reads first: each id's embedding and the dense features, as one vector."""

from __future__ import annotations

import torch
from torch import nn

from .dense import NORMALIZATIONS, DenseInput
from .embed import FeatureEmbedding


class ModelInput(nn.Module):
    """ids -> one embedding per field, flattened, beside the dense features: (B, F * E + D).

    dense_normalization (one of ``NORMALIZATIONS``) normalizes batch["dense"]
    inside the model (see ``DenseInput``); a model without dense features
    (n_dense=0) reads the embeddings alone.
    """

    def __init__(self, cardinalities: dict[str, int], n_dense: int, embedding_dim: int = 16,
                 dense_normalization: str = "none"):
        super().__init__()
        if isinstance(n_dense, bool) or not isinstance(n_dense, int) or n_dense < 0:
            raise ValueError(f"n_dense must be a non-negative integer, got {n_dense!r}")
        if dense_normalization not in NORMALIZATIONS:
            raise ValueError(f"dense_normalization must be one of {NORMALIZATIONS}, got {dense_normalization!r}")
        self.n_dense = n_dense
        self.embedding = FeatureEmbedding(cardinalities, embedding_dim)
        self.dense_input = DenseInput(n_dense, dense_normalization) if n_dense else None
        self.output_dim = self.embedding.output_dim + n_dense

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self.embedding(batch).flatten(1)            # (B, F * E)
        if self.dense_input is not None:
            dense = self.dense_input(batch["dense"])    # (B, D)
            x = torch.cat([x, dense], dim=1)            # (B, F * E + D)
        return x


def upgrade_input_keys(state_dict: dict[str, torch.Tensor], prefix: str) -> None:
    """Let checkpoints from before ``ModelInput`` load: move ``embedding.*`` and
    ``dense_input.*`` keys at the model's top level under ``input.``, in place."""
    for old in [key for key in state_dict if key.startswith((prefix + "embedding.", prefix + "dense_input."))]:
        state_dict[prefix + "input." + old[len(prefix):]] = state_dict.pop(old)
