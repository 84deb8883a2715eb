"""Probe for claims 2 and 3 (chapter 4): does the log show them, and how strongly?

    .venv/bin/python experiments/multitask_probe.py --scale book

A measurement to design chapter 4 by, not a claim. Time split as in chapters
2 and 3 (2 validation days, then 2 test days), one seed per run.

- Claim 2, an abundant task lifts a sparse one: conversion is learned on
  clicked impressions only. A conversion-only network trained on the clicked
  rows is compared with a shared-bottom and an MMoE network that also learn
  the click on every row, while the share of clicked training rows whose
  conversion label is kept shrinks (fewer conversions to learn from). Scored
  on the clicked test rows against the oracle's P(conversion | click).
- Claim 3, negative transfer: the click's gap closed when a network learns the
  click alone, with the hide task (whose planted direction points away from
  the click's), and with every task, for a shared bottom and an MMoE.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import time

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.batches import subset
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.metrics import gap_closed, logloss
from ranking.nn import EmbeddingMLP
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.simulate import TASKS, AdLogConfig, load_or_simulate
from ranking.train import fit, predict

FIT = dict(epochs=8, patience=1, batch_size=4096, lr=1e-3, weight_decay=1e-4, progress=False)
LABEL_SHARES = (0.25, 0.5, 1.0)
"""Share of clicked training rows that keep their conversion label."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "book", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()

    logs = load_or_simulate(AdLogConfig.preset(args.scale), seed=0)
    train_frame, valid_frame, test_frame = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=TASKS)).fit(train_frame)
    train, valid, test = (encoder.transform(frame) for frame in (train_frame, valid_frame, test_frame))
    cardinalities, n_dense = encoder.cardinalities, encoder.n_dense

    def scores(probs: np.ndarray, task: str, rows: np.ndarray) -> dict:
        y = test[f"label_{task}"].numpy()[rows]
        oracle = test[f"oracle_{task}"].numpy()[rows]
        prior = float(train[f"label_{task}"].numpy()[train["label_click"].numpy() == 1].mean()
                      if task == "conversion" else train[f"label_{task}"].numpy().mean())
        base = logloss(y, np.full(len(y), prior))
        return {"gap_closed": round(gap_closed(logloss(y, probs[rows]), base, logloss(y, oracle)), 4),
                "positives_in_test": int(y.sum())}

    clicked_test = test["label_click"].numpy() == 1
    all_test = np.ones(len(clicked_test), dtype=bool)
    generator = np.random.default_rng(args.seed)
    keep_draw = generator.random(len(train_frame))

    claim2 = []
    for share in LABEL_SHARES:
        data = dict(train)
        data["conversion_labelled"] = (data["label_click"].numpy() == 1) & (keep_draw < share)
        data["conversion_labelled"] = torch.from_numpy(data["conversion_labelled"].astype(np.float32))
        valid_data = {**valid, "conversion_labelled": valid["label_click"]}
        conversions = int((data["label_conversion"] * data["conversion_labelled"]).sum())
        models = {
            "conversion only": lambda: EmbeddingMLP(cardinalities, n_dense, tasks=("conversion",)),
            "shared bottom": lambda: SharedBottom(cardinalities, n_dense, tasks=("click", "conversion")),
            "MMoE": lambda: MMoE(cardinalities, n_dense, tasks=("click", "conversion")),
        }
        for name, build in models.items():
            clock = time.perf_counter()
            torch.manual_seed(args.seed)
            model = build()
            tasks = ("conversion",) if name == "conversion only" else ("click", "conversion")
            fit_data = subset(data, data["conversion_labelled"] == 1) if name == "conversion only" else data
            fit_valid = subset(valid_data, valid_data["label_click"] == 1) if name == "conversion only" else valid_data
            fit(model, fit_data, fit_valid, tasks=tasks, task_masks={"conversion": "conversion_labelled"},
                seed=args.seed, **FIT)
            probs = predict(model, test)["conversion"]
            claim2.append({"label_share": share, "training_conversions": conversions, "model": name,
                           **scores(probs, "conversion", clicked_test),
                           "seconds": round(time.perf_counter() - clock, 1)})
            print(claim2[-1], flush=True)

    claim3 = []
    task_sets = {"click": ("click",), "click + hide": ("click", "hide"), "all tasks": tuple(TASKS)}
    for model_name, model_class in (("shared bottom", SharedBottom), ("MMoE", MMoE)):
        for label, tasks in task_sets.items():
            clock = time.perf_counter()
            torch.manual_seed(args.seed)
            model = model_class(cardinalities, n_dense, tasks=tasks)
            masks = {"conversion": "label_click"} if "conversion" in tasks else None
            fit(model, train, valid, tasks=tasks, task_masks=masks, seed=args.seed, **FIT)
            probs = predict(model, test)["click"]
            claim3.append({"model": model_name, "tasks": label, **scores(probs, "click", all_test),
                           "seconds": round(time.perf_counter() - clock, 1)})
            print(claim3[-1], flush=True)

    result = {"scale": args.scale, "seed": args.seed, "fit": {k: v for k, v in FIT.items() if k != "progress"},
              "train_clicks": int(train["label_click"].sum()),
              "train_conversions": int(train["label_conversion"].sum()),
              "claim2_conversion_on_clicked_test_rows": claim2, "claim3_click_gap_closed": claim3,
              "seconds": round(time.perf_counter() - started)}
    print("wrote", write_result("multitask_probe", result, __file__))


if __name__ == "__main__":
    main()
