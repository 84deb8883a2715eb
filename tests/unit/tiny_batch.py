"""A tiny random batch in the data contract, shared by the model tests."""

import torch

CARDINALITIES = {"user_id": 50, "surface": 3, "is_video": 2}


def make_batch(b: int = 8, n_dense: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = {name: torch.randint(0, size, (b,), generator=generator) for name, size in CARDINALITIES.items()}
    batch["dense"] = torch.randn(b, n_dense, generator=generator)
    return batch
