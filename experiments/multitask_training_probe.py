"""Probe for chapter 4's training: do all five heads beat the base rate, and what is claim 3 once de-confounded?

    .venv/bin/python experiments/multitask_training_probe.py --scale book --seeds 0 1 2

A measurement to design chapter 4 by, not a claim. Every network starts each
head at its task's base rate (``fit(start_at_base_rate=True)``). Two parts:

- ``heads``: five-task shared bottom and MMoE, early-stopped on the plain sum of
  the validation losses, on the sum of each task's loss divided by its
  base-rate entropy (every task's normalized entropy counts alike), or on the
  click alone. Gap closed per head in expected log loss against the oracle.
- ``claim3``: the click's gap closed when the network learns the click alone,
  with the hide, or with all five tasks, every network stopped when *its click*
  validation loss turns up, over several seeds.
Runs go to a pool of single-threaded workers; results to
results/multitask_training_probe-cpu.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import oracle_gap_closed
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.simulate import TASKS, AdLogConfig, load_or_simulate
from ranking.objective import entropy_weights
from ranking.train import fit, predict

FIT = dict(epochs=10, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False,
           start_at_base_rate=True)
MODELS = {"shared bottom": SharedBottom, "MMoE": MMoE}
TASK_SETS = {"click": ("click",), "click + hide": ("click", "hide"), "all tasks": TASKS}
_DATA = {}


def data(scale: str):
    """The encoded time split of the scale's log (cached per worker process)."""
    if scale not in _DATA:
        torch.set_num_threads(1)
        logs = load_or_simulate(AdLogConfig.preset(scale), seed=0)
        frames = time_split(logs.impressions, valid_days=2, test_days=2)
        encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=TASKS)).fit(frames[0])
        _DATA[scale] = (encoder, *[encoder.transform(frame) for frame in frames])
    return _DATA[scale]


def rates(train) -> dict[str, float]:
    clicked = train["label_click"] == 1
    return {task: float(train[f"label_{task}"][clicked].mean() if task == "conversion"
                        else train[f"label_{task}"].mean()) for task in TASKS}


def run(scale: str, part: str, model_name: str, tasks: tuple[str, ...], monitor: str, seed: int,
        weighting: str) -> dict:
    encoder, train, valid, test = data(scale)
    base = rates(train)
    masks = {"conversion": "label_click"} if "conversion" in tasks else None
    normalized = entropy_weights(train, tasks, masks)
    task_weights = normalized if weighting == "normalized" else None
    watch = {"sum": None, "click": "click", "normalized": normalized}[monitor]
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = MODELS[model_name](encoder.cardinalities, encoder.n_dense, tasks=tasks)
    result = fit(model, train, valid, tasks=tasks, task_masks=masks, task_weights=task_weights, monitor=watch,
                 seed=seed, **FIT)
    probs = predict(model, test)
    clicked = test["label_click"].numpy() == 1
    gaps = {}
    for task in tasks:
        rows = clicked if task == "conversion" else slice(None)
        gaps[task] = round(oracle_gap_closed(test[f"oracle_{task}"].numpy()[rows], probs[task][rows],
                                             base[task]), 4)
    return {"part": part, "model": model_name, "tasks": "+".join(tasks), "monitor": monitor, "seed": seed,
            "weighting": weighting,
            "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "gap_closed": gaps, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "moderate", "book", "gpu"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parts", nargs="+", default=["heads", "claim3"], choices=["heads", "claim3"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--weighting", default="plain", choices=["plain", "normalized"],
                        help="task weights in the loss: 1 each, or entropy_weights (normalized entropies)")
    parser.add_argument("--monitors", nargs="+", default=["sum", "normalized", "click"])
    parser.add_argument("--name", default="multitask_training_probe")
    args = parser.parse_args()
    started = time.perf_counter()
    jobs = []
    if "heads" in args.parts:
        jobs += [(args.scale, "heads", name, TASKS, monitor, 0, args.weighting)
                 for monitor in args.monitors for name in MODELS]
    if "claim3" in args.parts:
        jobs += [(args.scale, "claim3", name, tasks, "click", seed, args.weighting)
                 for seed in args.seeds for name in MODELS for tasks in TASK_SETS.values()]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        runs = []
        for result in pool.map(run, *zip(*jobs)):
            print(result, flush=True)
            runs.append(result)
    path = write_result(args.name, {
        "scale": args.scale, "weighting": args.weighting, "fit": {k: v for k, v in FIT.items() if k != "progress"},
        "runs": runs, "seconds": round(time.perf_counter() - started)}, __file__)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
