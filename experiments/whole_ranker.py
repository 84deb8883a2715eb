"""Chapter 10's experiments: the whole ranker on three worlds, its ablations, and the tuned blend.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/whole_ranker.py --part headline
    OMP_NUM_THREADS=1 .venv/bin/python experiments/whole_ranker.py --part ablation

Each world is a log of ``whole_ranker.WORLD`` (searches on) at ``--scale`` with
generator seed 0, 1, 2, split by time (2 validation, 2 test days).

- headline (book scale): per world, chapter 2's GBDT, chapter 6's best model
  (long-short, the engagement sequence, click only) and the whole ranker, scored
  on the test days: click gap closed (overall, per surface), each head's gap,
  the share of the interest part and of the search-intent part recovered, and
  the milliseconds to score one request. Then the blend: hand-set weights
  (``blend.VALUES``), the click-only ranking and the weights tuned on the
  validation days, scored with the truth on the test days and on the last day;
  the weights tuned on world 0 are also scored on worlds 1 and 2.
- ablation (moderate log): the whole ranker and each part taken away
  (``whole_ranker.ABLATIONS``) on the same three worlds.

Results go to results/whole_ranker_<part>-<device>.json after every run; a rerun
skips the runs already there (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import results_dir, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sequence_ablations import latency_ms  # noqa: E402

from ranking.blend import VALUES, evaluate_blend, expected_actions, tune_blend  # noqa: E402
from ranking.features import FeatureEncoder, FeatureSpec, time_split  # noqa: E402
from ranking.gbdt import GBDTClassifier, gbdt_features  # noqa: E402
from ranking.metrics import hidden_part_recovered, oracle_gap_closed  # noqa: E402
from ranking.sequence_models import train_sequence_model  # noqa: E402
from ranking.simulate import SURFACES, AdLogConfig, load_or_simulate  # noqa: E402
from ranking.simulate.truth import blind_oracle  # noqa: E402
from ranking.train import predict  # noqa: E402
from ranking.utility import feed_requests  # noqa: E402
from ranking.whole_ranker import (ABLATIONS, TASKS, WORLD, encoder_spec,  # noqa: E402
                                  train_closeup)

RESULTS_DIR = results_dir(__file__)
TOP = 3
"""Top slots of each feed request the blend fills."""


class World:
    """One generator world: its log, splits, blind oracles and scoring."""

    def __init__(self, scale: str, seed: int):
        self.seed = seed
        self.logs = load_or_simulate(AdLogConfig.preset(scale, **WORLD), seed=seed)
        self.train, self.valid, self.test = time_split(self.logs.impressions, 2, 2)
        self.rates = {task: float(self.train[task].mean()) for task in TASKS}
        self.rates["conversion"] = float(self.train["conversion"][self.train["click"] == 1].mean())
        self.blind = {part: blind_oracle(self.logs, self.test, part)
                      for part in ("interest", "query")}
        self.surface = self.test["surface"].astype(str).to_numpy()

    def score(self, probs: dict[str, np.ndarray]) -> dict:
        """Gaps closed on the test days, and the hidden parts recovered."""
        p_click = self.test["p_click"].to_numpy()
        row = {"gap_closed": oracle_gap_closed(p_click, probs["click"], self.rates["click"])}
        for surface in SURFACES:
            on = self.surface == surface
            row[f"gap_closed_{surface}"] = oracle_gap_closed(
                p_click[on], probs["click"][on], self.rates["click"])
        for task in TASKS[1:]:
            if task in probs:
                row[f"gap_closed_{task}"] = oracle_gap_closed(
                    self.test[f"p_{task}"].to_numpy(), probs[task], self.rates[task])
        row["interest_recovered"] = hidden_part_recovered(p_click, self.blind["interest"],
                                                          probs["click"])
        on = self.surface == "search"
        row["query_recovered"] = hidden_part_recovered(
            p_click[on], self.blind["query"][on], probs["click"][on])
        return row

    def encoded(self, spec: FeatureSpec):
        encoder = FeatureEncoder(self.logs, spec).fit(self.train)
        return (encoder, *(encoder.transform(frame)
                           for frame in (self.train, self.valid, self.test)))


def run_gbdt(world: World) -> dict:
    inputs = gbdt_features(world.logs.impressions, prior=world.rates["click"])
    columns = [c for c in inputs.columns if not c.endswith("_impressions")]
    model = GBDTClassifier(seed=0).fit(
        inputs.loc[world.train.index, columns], world.train["click"],
        inputs.loc[world.valid.index, columns], world.valid["click"])
    return world.score({"click": np.asarray(model.predict(inputs.loc[world.test.index,
                                                                      columns]))})


def run_long_short(world: World) -> dict:
    encoder, train, valid, test = world.encoded(FeatureSpec(sequence_length=32,
                                                            tasks=("click",)))
    model, result = train_sequence_model("long-short", encoder, world.logs, train, valid,
                                         seed=0)
    probs = predict(model, test, history=encoder.history)
    return {**world.score(probs), "best_epoch": int(result.best_epoch),
            "latency_ms": latency_ms(model, test, encoder.history, 512, 30)}


def run_closeup(world: World, options: dict, keep: dict | None = None) -> dict:
    encoder, train, valid, test = world.encoded(encoder_spec(**options))
    start = time.perf_counter()
    model, result = train_closeup(encoder, world.logs, train, valid, seed=0, **options)
    fit_seconds = time.perf_counter() - start
    probs = predict(model, test, history=encoder.history)
    if keep is not None:           # the blend needs the validation days' probabilities too
        keep.update(test=probs, valid=predict(model, valid, history=encoder.history))
    return {**world.score(probs), "best_epoch": int(result.best_epoch),
            "fit_seconds": round(fit_seconds, 1),
            "latency_ms": latency_ms(model, test, encoder.history, 512, 30),
            "parameters": sum(p.numel() for p in model.parameters())}


def blend_inputs(frame, probs: dict[str, np.ndarray]) -> tuple:
    """The feed requests' candidates: model probabilities, true expected actions, request ids."""
    request, keep = feed_requests(frame, "home_feed", min_candidates=8)
    model = expected_actions(*(probs[task][keep] for task in TASKS))
    truth = expected_actions(*(frame[f"p_{task}"].to_numpy()[keep] for task in TASKS))
    return model, truth, request[keep], frame["timestamp"].to_numpy()[keep]


def run_blend(world: World, probs: dict, weights_world_0: dict | None) -> dict:
    valid_model, valid_truth, valid_requests, _ = blend_inputs(world.valid, probs["valid"])
    tuned, trials = tune_blend(valid_model, valid_truth, valid_requests, k=TOP, seed=0)
    model, truth, requests, seconds = blend_inputs(world.test, probs["test"])
    last_day = seconds >= seconds.max() - 86_400 + 1
    blends = {"click only": {"click": 1.0}, "hand-set": dict(VALUES), "tuned": tuned}
    if weights_world_0 is not None:
        blends["tuned on world 0"] = weights_world_0
    row = {"tuned_weights": tuned, "trials": len(trials),
           "trials_meeting_floor": int(trials["meets_floor"].sum())}
    for name, weights in blends.items():
        row[name] = evaluate_blend(weights, model, truth, requests, TOP)
        row[f"{name}, last day"] = evaluate_blend(
            weights, {a: p[last_day] for a, p in model.items()},
            {a: p[last_day] for a, p in truth.items()}, requests[last_day], TOP)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("headline", "ablation"), required=True)
    parser.add_argument("--scale", default=None, help="book (headline), moderate (ablation)")
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    scale = args.scale or ("book" if args.part == "headline" else "moderate")
    torch.set_num_threads(1)
    name = f"whole_ranker_{args.part}"
    path = RESULTS_DIR / f"{name}-{'gpu' if torch.cuda.is_available() else 'cpu'}.json"
    done = [] if args.fresh or not path.exists() else json.loads(path.read_text())["runs"]
    finished = {(run["world"], run["model"]) for run in done}

    def record(run: dict) -> None:
        done.append(run)
        print(json.dumps(run), flush=True)
        write_result(name, {"scale": scale, "world": WORLD, "top_slots": TOP,
                            "values": VALUES, "runs": done}, __file__)

    for seed in args.worlds:
        world = World(scale, seed)
        if args.part == "ablation":
            for variant, options in ABLATIONS.items():
                if (seed, variant) not in finished:
                    record({"world": seed, "model": variant, **run_closeup(world, options)})
            continue
        for model_name, run in (("GBDT", run_gbdt), ("long-short", run_long_short)):
            if (seed, model_name) not in finished:
                record({"world": seed, "model": model_name, **run(world)})
        if (seed, "whole ranker") not in finished:
            probs = {}
            measured = run_closeup(world, {}, keep=probs)
            world_0 = next((run["blend"]["tuned_weights"] for run in done
                            if run["world"] == 0 and run["model"] == "whole ranker"), None)
            blend = run_blend(world, probs, world_0 if seed != 0 else None)
            record({"world": seed, "model": "whole ranker", **measured, "blend": blend})


if __name__ == "__main__":
    main()
