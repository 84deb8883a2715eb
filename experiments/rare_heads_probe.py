"""Why the save head stays at its base rate on some generator worlds: per-epoch curves.

    .venv/bin/python experiments/rare_heads_probe.py --worlds 0 1 2 3 4

Chapter 4's ranker (an MMoE on click, save, hide; heads start at their base rate;
losses weighted by base-rate entropy) on the ``book`` log of each generator world,
trained for a fixed number of epochs with no early stopping. After every epoch it
records each task's train and validation loss, the monitor early stopping reads,
the save head's share of its oracle gap closed on the test days and the spread of
its predictions, and the gradient norm reaching each task's tower (mean over the
epoch's first 50 batches). The epoch that early stopping (patience 1) would keep
is marked, so the record shows what early stopping sees and what it throws away.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

from ranking.batches import Batches
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_gap_closed
from ranking.nn.multitask import MMoE
from ranking.objective import (Objective, boost_rare_tasks, entropy_weights,
                               start_heads_at_base_rate)
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import EarlyStopping, predict, train_step

NAME = "rare_heads_probe"
TASKS = ("click", "save", "hide")


def tower_gradient_norms(model, tasks) -> dict[str, float]:
    """The gradient norm of each task's tower parameters (after a backward)."""
    norms = {}
    for task in tasks:
        grads = [p.grad for n, p in model.named_parameters()
                 if n.startswith(f"towers.{task}.") and p.grad is not None]
        norms[task] = float(torch.sqrt(sum((g ** 2).sum() for g in grads))) if grads else float("nan")
    return norms


def run_world(world: int, epochs: int, lr: float, boost: float = 1.0,
              batch_size: int = 4096, weight_decay: float = 1e-4) -> dict:
    torch.set_num_threads(1)
    logs = load_or_simulate(AdLogConfig.preset("book"), seed=world)
    frames = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=TASKS)).fit(frames[0])
    train, valid, test = (encoder.transform(frame) for frame in frames)
    weights = entropy_weights(train, TASKS)
    weights = boost_rare_tasks(weights, boost)
    objective = Objective(TASKS, None, weights)
    torch.manual_seed(0)
    model = MMoE(encoder.cardinalities, encoder.n_dense, tasks=TASKS)
    start_heads_at_base_rate(model, train, TASKS, objective.masks)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    batches = Batches(train, batch_size, seed=0)
    stopping = EarlyStopping(objective, weights, patience=1)
    prior = {task: float(train[f"label_{task}"].float().mean()) for task in TASKS}
    rows, stopped_at = [], None
    for epoch in range(1, epochs + 1):
        model.train()
        norms = {task: [] for task in TASKS}
        for step, batch in enumerate(batches):
            train_step(model, batch, objective, optimizer)
            if step < 50:
                for task, value in tower_gradient_norms(model, TASKS).items():
                    norms[task].append(value)
        row = {"epoch": epoch, **stopping.evaluate(model, valid, None, torch.device("cpu"), "fp32")}
        if stopped_at is None and stopping.should_stop(epoch, model):
            stopped_at = epoch
        probs = predict(model, test, batch_size=8192)
        for task in TASKS:
            row[f"gap_closed_{task}"] = oracle_gap_closed(test[f"oracle_{task}"].numpy(), probs[task], prior[task])
            row[f"grad_norm_{task}"] = float(np.mean(norms[task]))
        row["save_prediction_std"] = float(probs["save"].std())
        row["save_truth_std"] = float(test["oracle_save"].numpy().std())
        rows.append(row)
        print(world, {k: round(v, 5) for k, v in row.items()}, flush=True)
    kept = stopping.best_epoch
    return {"world": world, "rates": prior, "weights": weights, "epochs": rows,
            "early_stopping_keeps_epoch": kept, "early_stopping_stops_after": stopped_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--boost", type=float, default=1.0,
                        help="train (and watch) every task but the click at this multiple of its "
                             "entropy weight (boost_rare_tasks); 1: entropy weights alone")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    n = len(args.worlds)
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_world, args.worlds, [args.epochs] * n, [args.lr] * n,
                                [args.boost] * n, [args.batch_size] * n, [args.weight_decay] * n))
    settings = {k: getattr(args, k) for k in ("epochs", "lr", "boost", "batch_size", "weight_decay")}
    print(write_result(NAME + args.tag, {"worlds": results, **settings}, __file__))


if __name__ == "__main__":
    main()
