"""Chapter 4's five-task networks with and without ``boost_rare_tasks``: every head's gap closed.

    .venv/bin/python experiments/rare_heads_five_task.py --worlds 0

The shared bottom and the MMoE of chapter 4 on all five actions, trained as the
chapter trains them (heads at their base rate, entropy weights, the conversion
on clicked rows, early stopping on the entropy-weighted loss with patience 2,
ten epochs at most) on the ``book`` log, once with the entropy weights alone
and once with the rare tasks trained at four times them. Records each head's
share of the base-rate -> oracle gap closed on the test days (the conversion on
the clicked test rows, against P(conversion | click)) and the epoch kept.
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

from ranking.features import FeatureEncoder, FeatureSpec, time_split  # noqa: E402
from ranking.metrics import oracle_gap_closed  # noqa: E402
from ranking.nn.multitask import MMoE, SharedBottom  # noqa: E402
from ranking.objective import boost_rare_tasks, entropy_weights, task_rates  # noqa: E402
from ranking.simulate import TASKS, AdLogConfig, load_or_simulate  # noqa: E402
from ranking.train import fit, predict  # noqa: E402

NAME = "rare_heads_five_task"
CLICKED_ONLY = {"conversion": "label_click"}
FIT = dict(epochs=10, patience=2, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False,
           start_at_base_rate=True, seed=0)


def run(world: int, name: str, boost: float) -> dict:
    torch.set_num_threads(1)
    logs = load_or_simulate(AdLogConfig.preset("book"), seed=world)
    frames = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=TASKS)).fit(frames[0])
    train, valid, test = (encoder.transform(frame) for frame in frames)
    rates = task_rates(train, TASKS, CLICKED_ONLY)
    weights = entropy_weights(train, TASKS, CLICKED_ONLY)
    torch.manual_seed(0)
    model = (SharedBottom if name == "shared bottom" else MMoE)(encoder.cardinalities, encoder.n_dense,
                                                                 tasks=TASKS)
    result = fit(model, train, valid, tasks=TASKS, task_masks=CLICKED_ONLY,
                 task_weights=boost_rare_tasks(weights, boost), monitor=weights, **FIT)
    probs = predict(model, test)
    clicked = test["label_click"].numpy() == 1
    gaps = {}
    for task in TASKS:
        rows = clicked if task == "conversion" else np.ones(len(clicked), dtype=bool)
        gaps[task] = oracle_gap_closed(test[f"oracle_{task}"].numpy()[rows], probs[task][rows], rates[task])
    print(world, name, boost, {task: round(gap, 4) for task, gap in gaps.items()}, result.best_epoch, flush=True)
    return {"world": world, "model": name, "boost": boost, "gap_closed": gaps,
            "best_epoch": int(result.best_epoch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    plan = [(world, name, boost) for world in args.worlds for name in ("shared bottom", "MMoE")
            for boost in (1.0, 4.0)]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(run, *zip(*plan)))
    print(write_result(NAME, {"fit": FIT, "runs": runs}, __file__))


if __name__ == "__main__":
    main()
