"""Which of the chapters' kinds of work slow down when a second worker runs beside them.

    PYTHONPATH=. .venv/bin/python benchmarks/contention.py

``make book`` executes notebooks side by side, one single-threaded worker per core.
Two workers on two idle cores should each run at full speed; a kind of work that
shares something else (memory bandwidth, the last-level cache, page faults in a
virtual machine, a thread pool) slows down when it has a neighbour. Each workload
below, taken from what chapters 3, 4 and 8 do, runs once alone and then as two
copies at once, each in its own single-threaded process on synthetic inputs of the
book's shapes. The record gives each one's seconds alone, the slower copy's seconds
together, and their ratio: about 1 means no contention.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

ROWS, FIELDS, DENSE = 4096, 12, 20
CARDINALITY = 20_000


def _batch(torch, rows: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {"ids": torch.randint(0, CARDINALITY, (rows, FIELDS), generator=generator),
            "dense": torch.randn(rows, DENSE, generator=generator),
            "label": torch.randint(0, 2, (rows,), generator=generator).float()}


def _model(torch):
    from torch import nn

    class Ranker(nn.Module):
        # Embedding table, an MLP, one logit: the chapters' smallest deep ranker.
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(CARDINALITY, 16)
            self.mlp = nn.Sequential(nn.Linear(FIELDS * 16 + DENSE, 256), nn.ReLU(),
                                     nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 1))

        def forward(self, batch):
            x = torch.cat([self.embedding(batch["ids"]).flatten(1), batch["dense"]], 1)
            return self.mlp(x).squeeze(1)

    return Ranker()


def train_steps(rows: int, steps: int, dtype: str | None) -> None:
    """Adam steps on one batch, optionally under CPU autocast."""
    import torch

    model, batch = _model(torch), _batch(torch, rows)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    for _ in range(steps):
        with torch.autocast("cpu", dtype=getattr(torch, dtype or "bfloat16"),
                            enabled=dtype is not None):
            loss = loss_fn(model(batch).float(), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def big_allocations(megabytes: int, rounds: int) -> None:
    """Allocate, touch and free large tensors: page faults, and nothing else."""
    import torch

    for _ in range(rounds):
        torch.ones(megabytes * 2**18)            # 4-byte floats


def pandas_groupby(rows: int, rounds: int) -> None:
    """The feature code's kind of work: sort and group a large frame."""
    import numpy as np
    import pandas as pd

    generator = np.random.default_rng(0)
    frame = pd.DataFrame({"user": generator.integers(0, 50_000, rows),
                          "click": generator.random(rows) < 0.05})
    for _ in range(rounds):
        frame.groupby("user")["click"].cumsum()


WORKLOADS = {
    "train, batch 512, fp32": lambda: train_steps(512, 1500, None),
    "train, batch 4096, fp32": lambda: train_steps(ROWS, 250, None),
    "train, batch 4096, bf16 autocast": lambda: train_steps(ROWS, 40, "bfloat16"),
    "train, batch 4096, fp16 autocast": lambda: train_steps(ROWS, 40, "float16"),
    "allocate 256 MB tensors": lambda: big_allocations(256, 60),
    "pandas group-by, 1.2M rows": lambda: pandas_groupby(1_200_000, 20),
}


def timed(name: str) -> float:
    start = time.perf_counter()
    WORKLOADS[name]()
    return time.perf_counter() - start


def run_copies(name: str, copies: int) -> list[float]:
    """Seconds of each of ``copies`` single-threaded processes started together."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--one", name]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
                 for _ in range(copies)]
    return [float(process.communicate()[0].strip().splitlines()[-1]) for process in processes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)       # a worker: time one workload
    parser.add_argument("--copies", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    if args.one:
        import torch

        torch.set_num_threads(1)
        print(f"{timed(args.one):.3f}")
        return
    runs = []
    for name in WORKLOADS:
        alone = run_copies(name, 1)[0]
        together = max(run_copies(name, args.copies))
        runs.append({"workload": name, "seconds_alone": round(alone, 2),
                     "seconds_together": round(together, 2), "copies": args.copies,
                     "slowdown": round(together / alone, 2)})
        print(json.dumps(runs[-1]), flush=True)
    path = write_result("contention", {"runs": runs}, __file__)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
