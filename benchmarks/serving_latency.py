"""Latency of one ranking request, N candidates, on one CPU thread: eager, exported, compiled.

    PYTHONPATH=. .venv/bin/python benchmarks/serving_latency.py --scale smoke   # a quick look
    python benchmarks/serving_latency.py --scale book

A ranker serves one request at a time (a user, a surface, the N candidates
retrieval found), and what a product waits on is that one call, tail included.
Each model is trained for one epoch on the log, calibrated with Platt scaling
on the validation days, saved with ``ranking.serve.save_ranker`` and loaded
back, then timed on requests of N = 16 ... 4096 candidates (a random user,
home feed, N distinct random items, a random hour: a different request each
repeat). Three ways to run the model:

- ``eager``: the loaded ``nn.Module``;
- ``exported``: the ``torch.export`` program of ``export_ranker``, loaded back;
- ``compiled``: ``torch.compile`` of the eager model (Inductor, C++ on a CPU):
  the first call of each N is timed apart (it compiles, or recompiles for a
  new shape), with an empty Inductor cache so that it is a cold start; if
  compiling fails, its error is recorded instead.

Two levels for each: ``model``, the forward pass over the request's encoded
rows; ``request``, ``Ranker.rank`` end to end (checks, feature-table lookups,
encoding with the training encoder, forward, calibration, sort). The p50 and
p99 milliseconds over the repeats are recorded, with the largest score
difference from eager.
"""

from __future__ import annotations

import sys

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.calibration import PlattScaling
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.nn import DCNv2, EmbeddingMLP
from ranking.serve import Ranker, export_ranker, load_exported, load_ranker, save_ranker
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import fit, predict

MODELS = {
    "EmbeddingMLP": (EmbeddingMLP, dict(embedding_dim=16, hidden=[256, 128])),
    "DCNv2": (DCNv2, dict(embedding_dim=16, cross_layers=3, hidden=[256, 128])),
}
"""The book's two deep models at the book's size: class and constructor arguments."""


def percentiles_ms(call, requests: list, repeats: int) -> dict[str, float]:
    """p50, p99 and mean milliseconds of ``call(request)``, cycling through ``requests``."""
    for request in requests[:5]:                       # warm-up
        call(request)
    times = []
    for i in range(repeats):
        request = requests[i % len(requests)]
        start = time.perf_counter()
        call(request)
        times.append(1000 * (time.perf_counter() - start))
    return {"p50_ms": round(float(np.percentile(times, 50)), 4),
            "p99_ms": round(float(np.percentile(times, 99)), 4),
            "mean_ms": round(float(np.mean(times)), 4)}


def make_requests(ranker: Ranker, n: int, count: int, rng: np.random.Generator) -> list[dict]:
    """``count`` home-feed requests of ``n`` distinct items, each with its encoded rows."""
    n_users = len(ranker.tables["user_follower_count"])
    n_items = len(ranker.tables["item_category"])
    requests = []
    for _ in range(count):
        request = dict(user_id=int(rng.integers(n_users)), surface="home_feed",
                       item_ids=rng.choice(n_items, size=n, replace=False),
                       context={"hour_of_day": int(rng.integers(24))})
        requests.append({"request": request, "data": ranker.encode_request(**request)})
    return requests


def forward(model: torch.nn.Module, task: str):
    """A function encoded rows -> probabilities of ``task``, as the ranker computes them."""
    def run(request: dict) -> torch.Tensor:
        with torch.inference_mode():
            return torch.sigmoid(model(request["data"])[task].float())
    return run


def compiled_ranker(saved: Path) -> tuple[Ranker | None, str | None]:
    """A loaded ranker whose model is torch.compile'd, or None and the error compiling raised."""
    ranker = load_ranker(saved)
    try:
        ranker.model = torch.compile(ranker.model)
    except Exception as error:       # noqa: BLE001, recorded in the result
        return None, f"{type(error).__name__}: {error}"[:500]
    return ranker, None


def time_model(name: str, saved: Path, exported_dir: Path, sizes: list[int], repeats: int,
               seed: int) -> tuple[list[dict], dict]:
    """Every (variant, level, N) run of one saved model, and what loading/compiling cost."""
    start = time.perf_counter()
    eager = load_ranker(saved)
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    export_ranker(eager, exported_dir)
    exported = load_exported(exported_dir)
    export_s = time.perf_counter() - start
    compiled, compile_error = compiled_ranker(saved)
    variants = {"eager": eager, "exported": exported}
    if compiled is not None:
        variants["compiled"] = compiled
    rng = np.random.default_rng(seed)
    runs, first_call_s = [], {}
    n_items = len(eager.tables["item_category"])
    for n in sorted({min(n, n_items) for n in sizes}):     # no more candidates than items
        requests = make_requests(eager, n, 20, rng)
        reference = [forward(eager.model, eager.task)(request) for request in requests]
        for variant, ranker in list(variants.items()):
            model_call = forward(ranker.model, ranker.task)
            if variant == "compiled":
                begin = time.perf_counter()
                try:
                    model_call(requests[0])
                except Exception as error:       # noqa: BLE001, recorded in the result
                    compile_error = f"{type(error).__name__}: {error}"[:500]
                    del variants["compiled"]
                    continue
                first_call_s[n] = round(time.perf_counter() - begin, 2)
            difference = max(float((model_call(request) - expected).abs().max())
                             for request, expected in zip(requests, reference))
            levels = {"model": model_call,
                      "request": lambda request, ranker=ranker: ranker.rank(**request["request"])}
            for level, call in levels.items():
                runs.append({"model": name, "variant": variant, "level": level, "candidates": n,
                             **percentiles_ms(call, requests, repeats),
                             "max_abs_diff_vs_eager": difference})
                print(f"{name:<12} {variant:<8} {level:<7} N={n:>5}: p50 {runs[-1]['p50_ms']:8.3f} "
                      f"ms, p99 {runs[-1]['p99_ms']:8.3f} ms", flush=True)
    costs = {"load_s": round(load_s, 3), "export_and_load_s": round(export_s, 3),
             "compile_first_call_s": first_call_s, "compile_error": compile_error}
    return runs, costs


def encoded_log(scale: str) -> tuple[FeatureEncoder, dict, dict]:
    """The log at ``scale`` split by time: the click encoder fitted on the training
    days, and the encoded training and validation days."""
    logs = load_or_simulate(AdLogConfig.preset(scale), seed=0)
    train_frame, valid_frame, _ = time_split(logs.impressions)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",)))
    encoder.fit(train_frame)
    return encoder, encoder.transform(train_frame), encoder.transform(valid_frame)


def train_and_save(name: str, encoder: FeatureEncoder, train: dict, valid: dict, folder: Path,
                   device: str | torch.device) -> tuple[Path, float]:
    """Model ``name`` of MODELS trained one epoch on ``device``, Platt-calibrated on the
    validation days and saved with ``save_ranker`` in ``folder``; and the training seconds."""
    model_class, config = MODELS[name]
    torch.manual_seed(0)
    model = model_class(encoder.cardinalities, encoder.n_dense, **config)
    start = time.perf_counter()
    fit(model, train, epochs=1, batch_size=4096, device=device, progress=False)
    train_s = time.perf_counter() - start
    calibrator = PlattScaling().fit(predict(model, valid, device=device)["click"],
                                    valid["label_click"].numpy())
    return save_ranker(folder, model, encoder, config, calibrator), train_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "moderate", "book"])
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=300, help="timed requests per run")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)

    encoder, train, valid = encoded_log(args.scale)

    runs, costs = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(scratch) / "inductor")   # cold compiles
        for name in args.models:
            saved, train_s = train_and_save(name, encoder, train, valid, Path(scratch) / name,
                                            device="cpu")
            model_runs, costs[name] = time_model(name, saved, Path(scratch) / f"{name}-exported",
                                                 args.candidates, args.repeats, seed=0)
            costs[name]["train_1_epoch_s"] = round(train_s, 1)
            runs += model_runs
    result = {"scale": args.scale, "train_rows": len(train["label_click"]),
              "n_items": AdLogConfig.preset(args.scale).n_items,
              "repeats": args.repeats, "threads": torch.get_num_threads(),
              "models": {name: config for name, (_, config) in MODELS.items()},
              "costs": costs, "runs": runs}
    print("wrote", write_result("serving_latency", result, __file__))


if __name__ == "__main__":
    main()
