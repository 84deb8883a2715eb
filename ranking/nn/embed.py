"""One embedding table per categorical field: ids in, a vector per field out."""

from __future__ import annotations

import torch
from torch import nn

from .. import checks


class FeatureEmbedding(nn.Module):
    """Look up every categorical field in its own table and stack the results.

    Each field (user, item, advertiser, surface, ...) gets a ``cardinality x dim``
    table. The output keeps fields apart, (B, F, E), so interaction
    models can cross fields and an MLP can flatten them.
    """

    def __init__(self, cardinalities: dict[str, int], dim: int):
        super().__init__()
        if not cardinalities:
            raise ValueError(
                "cardinalities is empty: need at least one categorical field")
        for name, size in cardinalities.items():
            checks.positive_int(f"cardinalities[{name!r}]", size)
        checks.positive_int("dim", dim)
        self.fields = tuple(cardinalities)
        self.dim = dim
        self.tables = nn.ModuleDict({name: nn.Embedding(size, dim)
                                     for name, size in cardinalities.items()})
        for table in self.tables.values():
            # torch's default N(0, 1) is far larger than the other inputs;
            # CTR models start small.
            nn.init.normal_(table.weight, std=0.01)

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def output_dim(self) -> int:
        """Width of the output once flattened: n_fields * dim."""
        return self.n_fields * self.dim

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # F x (B, E): one vector per field and row
        vectors = [self.tables[name](batch[name]) for name in self.fields]
        return torch.stack(vectors, dim=1)  # (B, F, E)

    def check_ids(self, data: dict[str, torch.Tensor], name: str = "data") -> None:
        """Raise a ValueError, naming the field, if ``data`` lacks a field or holds
        an id its table has no row for.

        Without this, a bad id surfaces as torch's bare
        "index out of range in self", which names neither the field nor the value.
        """
        for field in self.fields:
            if field not in data:
                raise ValueError(f"{name} has no {field!r}, a field of the model's "
                                 "embedding tables")
            ids = data[field]
            if (ids.dtype.is_floating_point or ids.dtype == torch.bool
                    or ids.is_complex()):
                raise ValueError(f"{name}[{field!r}] must hold integer ids, "
                                 f"got dtype {ids.dtype}")
            if ids.numel() == 0:
                continue
            low, high = int(ids.min()), int(ids.max())
            size = self.tables[field].num_embeddings
            if low < 0 or high >= size:
                bad = low if low < 0 else high
                raise ValueError(f"{name}[{field!r}] holds id {bad}, but its "
                                 f"embedding table has {size} rows "
                                 f"(ids 0 to {size - 1})")
