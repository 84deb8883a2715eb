"""Chapter 6's heavy experiments on the moderate log: the ladder, event parts, ablations, cost.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/sequence_ablations.py

Every model trains with ``ranking.sequence_models.TRAINING`` on the training days
and is scored on the test days against the oracle (share of the base-rate ->
oracle log-loss gap closed, overall and per surface). Groups of runs:

- ladder: GBDT and the MLP without a sequence, then every rung of ``LADDER``,
  for each of ``--seeds``;
- events: long-short with fewer event parts (ids only; + category and action;
  + pretrained embedding; the ladder's run adds the candidate interactions);
- transformer: the Transformer with early fusion, 2 and 3 layers, 2 and 4 heads,
  order or no positions instead of time deltas, and concatenated event parts;
- length: DIN over the last 8, 16, 64 and 100 events (the ladder has 32);
- attention: sum pooling, DIN and long-short without the per-event comparisons
  with the candidate (``interactions=False``), for each of ``--seeds``: beside
  the ladder's runs (which have them), this splits DIN's gain between its
  attention and the comparisons it is given;
- cost: inference latency for ``--latency-rows`` candidates of one request and
  training rows per second, per model and sequence length.

Results go to results/sequence_ablations-<device>.json after every run, and a
rerun skips the runs already there (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import results_dir, write_result  # noqa: E402

RESULTS_DIR = results_dir(__file__)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ranking.features import FeatureEncoder, FeatureSpec, time_split  # noqa: E402
from ranking.gbdt import GBDTClassifier, gbdt_features  # noqa: E402
from ranking.metrics import oracle_report  # noqa: E402
from ranking.nn import EmbeddingMLP  # noqa: E402
from ranking.sequence_models import LADDER, TRAINING, train_sequence_model  # noqa: E402
from ranking.simulate import SURFACES, AdLogConfig, load_or_simulate  # noqa: E402
from ranking.train import fit, predict  # noqa: E402

NAME = "sequence_ablations"
EVENT_PARTS = {"item id": ("item",),
               "+ category, action": ("item", "category", "action"),
               "+ pretrained": ("item", "category", "action", "pretrained")}
TRANSFORMER = {"2 layers": dict(layers=2), "3 layers": dict(layers=3),
               "2 heads": dict(heads=2), "4 heads": dict(heads=4),
               "order positions": dict(positions="order"),
               "no positions": dict(positions="none"),
               "concat connection": dict(connection="concat")}
LENGTHS = (8, 16, 64, 100)


class Experiment:
    """The log, its splits and encoders (one per sequence length), and the scoring."""

    def __init__(self, scale: str):
        self.logs = load_or_simulate(AdLogConfig.preset(scale), seed=0)
        frames = time_split(self.logs.impressions, valid_days=2, test_days=2)
        self.train_frame, self.valid_frame, self.test_frame = frames
        self.prior = float(self.train_frame["click"].mean())
        self._encoded: dict[int, tuple] = {}
        self._gbdt_inputs = None

    def encoded(self, length: int) -> tuple:
        """(encoder, train, valid, test) with sequences of ``length`` events."""
        if length not in self._encoded:
            spec = FeatureSpec(sequence_length=length, tasks=("click",))
            encoder = FeatureEncoder(self.logs, spec).fit(self.train_frame)
            splits = [encoder.transform(frame) for frame in
                      (self.train_frame, self.valid_frame, self.test_frame)]
            self._encoded[length] = (encoder, *splits)
        return self._encoded[length]

    def gbdt_inputs(self):
        """Chapter 2's leakage-free rates for every impression (computed once)."""
        if self._gbdt_inputs is None:
            self._gbdt_inputs = gbdt_features(self.logs.impressions, prior=self.prior)
        return self._gbdt_inputs

    def score(self, p_click: np.ndarray) -> dict:
        """Gap closed, AUC and NE on the test days, overall and per surface."""
        frame = self.test_frame
        row = self._report(frame["click"], p_click, frame["p_click"])
        surface = frame["surface"].astype(str).to_numpy()
        for name in SURFACES:
            inside = surface == name
            row[f"gap_closed_{name}"] = self._report(
                frame["click"][inside], p_click[inside],
                frame["p_click"][inside])["gap_closed"]
        return row

    def _report(self, labels, p_click, p_true) -> dict:
        report = oracle_report(labels, {"model": p_click}, p_true, base_rate=self.prior)
        return {key: float(report.loc["model", key])
                for key in ("gap_closed", "auc", "normalized_entropy")}


def latency_ms(model, data, history, rows: int, repeats: int) -> float:
    """Median milliseconds to score ``rows`` candidates (one request), eval mode."""
    batch = {key: tensor[:rows] for key, tensor in data.items()}
    model.eval()
    timings = []
    with torch.inference_mode():
        for repeat in range(repeats + 3):
            start = time.perf_counter()
            if history is not None:
                batch.update(history.gather(batch))
            model(batch)
            if repeat >= 3:                       # the first calls warm up
                timings.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(timings), 3)


def run_network(experiment: Experiment, name: str, seed: int, length: int = 32,
                latency_rows: int = 512, repeats: int = 30, **options) -> dict:
    encoder, train, valid, test = experiment.encoded(length)
    start = time.perf_counter()
    if name == "MLP":
        torch.manual_seed(seed)
        model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense)
        result = fit(model, train, valid, seed=seed, progress=False, **TRAINING)
        history = None
    else:
        model, result = train_sequence_model(name, encoder, experiment.logs, train,
                                             valid, seed=seed, **options)
        history = encoder.history
    fit_seconds = time.perf_counter() - start
    p_click = predict(model, test, history=history)["click"]
    seconds_per_epoch = float(result.history["seconds"].mean())
    return {**experiment.score(p_click), "best_epoch": int(result.best_epoch),
            "fit_seconds": round(fit_seconds, 1),
            "train_rows_per_second": round(len(train["label_click"]) / seconds_per_epoch),
            "latency_ms": latency_ms(model, test, history, latency_rows, repeats),
            "parameters": sum(p.numel() for p in model.parameters())}


def run_gbdt(experiment: Experiment, seed: int) -> dict:
    inputs = experiment.gbdt_inputs()
    columns = [c for c in inputs.columns if not c.endswith("_impressions")]
    train, valid, test = (experiment.train_frame, experiment.valid_frame,
                          experiment.test_frame)
    start = time.perf_counter()
    model = GBDTClassifier(seed=seed).fit(
        inputs.loc[train.index, columns], train["click"],
        inputs.loc[valid.index, columns], valid["click"])
    fit_seconds = time.perf_counter() - start
    p_click = model.predict(inputs.loc[test.index, columns])
    return {**experiment.score(np.asarray(p_click)), "fit_seconds": round(fit_seconds, 1)}


def planned_runs(seeds: list[int]) -> list[dict]:
    """Every run, as (group, model, setting, seed, options)."""
    def ladder(seed: int) -> list[dict]:
        return [dict(group="ladder", model=name, setting="", seed=seed)
                for name in ("GBDT", "MLP", *LADDER)]

    runs = ladder(seeds[0])         # first seed, then the ablations, then more seeds
    for setting, parts in EVENT_PARTS.items():
        runs.append(dict(group="events", model="long-short", setting=setting, seed=0,
                         options=dict(parts=parts, interactions=False)))
    for setting, options in TRANSFORMER.items():
        runs.append(dict(group="transformer", model="transformer + fusion",
                         setting=setting, seed=0, options=options))
    for length in LENGTHS:
        runs.append(dict(group="length", model="din", setting=f"L = {length}",
                         seed=0, options=dict(length=length)))
    for seed in seeds[1:]:
        runs += ladder(seed)
    for seed in seeds:      # what carries DIN's gain: the attention, or the comparisons?
        for name in ("sum", "din", "long-short"):
            runs.append(dict(group="attention", model=name, setting="no comparisons",
                             seed=seed, options=dict(interactions=False)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="moderate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--latency-rows", type=int, default=512)
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    path = RESULTS_DIR / f"{NAME}-{'gpu' if torch.cuda.is_available() else 'cpu'}.json"
    done = []
    if path.exists() and not args.fresh:
        done = json.loads(path.read_text())["runs"]
    key = lambda run: (run["group"], run["model"], run["setting"], run["seed"])
    finished = {key(run) for run in done}
    experiment = Experiment(args.scale)
    for run in planned_runs(args.seeds):
        if key(run) in finished:
            continue
        options = run.pop("options", {})
        if run["model"] == "GBDT":
            measured = run_gbdt(experiment, run["seed"])
        else:
            measured = run_network(experiment, run["model"], run["seed"],
                                   latency_rows=args.latency_rows, **options)
        done.append({**run, **measured})
        print(json.dumps(done[-1]), flush=True)
        write_result(NAME, {"scale": args.scale, "latency_rows": args.latency_rows,
                            "training": TRAINING, "runs": done}, __file__)


if __name__ == "__main__":
    main()
