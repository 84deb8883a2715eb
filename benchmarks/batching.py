"""In-memory tensor batching vs a per-row Dataset + DataLoader, on the same features.

    python benchmarks/batching.py --scale book

A per-row ``Dataset`` pays Python overhead for every example (one
``__getitem__`` per row, then a collate that stacks thousands of small
tensors). ``ranking.batches.Batches`` gathers a whole batch with one index
operation per tensor. Both are timed over the same rows, batch size and data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.batches import Batches
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.simulate import AdLogConfig, load_or_simulate


class PerRowDataset(Dataset):
    """The textbook way: one example at a time, as a dict of 0-d / 1-d tensors."""

    def __init__(self, data: dict[str, torch.Tensor]):
        self.data = data
        self.length = len(next(iter(data.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {name: tensor[index] for name, tensor in self.data.items()}


def examples_per_second(batches, n_batches: int, batch_size: int) -> float:
    start = time.perf_counter()
    seen = 0
    for step, batch in enumerate(batches):
        seen += len(batch["label_click"])
        if step + 1 == n_batches:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "book", "gpu"])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=30, help="batches timed per method")
    args = parser.parse_args()
    torch.set_num_threads(1)

    logs = load_or_simulate(AdLogConfig.preset(args.scale), seed=0)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=32))
    data = encoder.fit(logs.impressions).transform(logs.impressions)
    n_batches = min(args.batches, len(logs.impressions) // args.batch_size)

    tensor_rate = examples_per_second(Batches(data, args.batch_size, seed=0), n_batches, args.batch_size)
    loader = DataLoader(PerRowDataset(data), batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    loader_rate = examples_per_second(loader, n_batches, args.batch_size)
    result = {"scale": args.scale, "rows": len(logs.impressions), "batch_size": args.batch_size,
              "batches_timed": n_batches, "tensors": sorted(data),
              "in_memory_examples_per_s": round(tensor_rate),
              "dataloader_examples_per_s": round(loader_rate),
              "speedup": round(tensor_rate / loader_rate, 1)}
    print(json.dumps({k: v for k, v in result.items() if k != "tensors"}, indent=1))
    print("wrote", write_result("batching", result, __file__))


if __name__ == "__main__":
    main()
