"""Latency of one ranking request on a GPU: fp32 vs bf16, eager vs CUDA graphs.

    python benchmarks/serving_latency_gpu.py --scale book          # needs a CUDA GPU

The GPU companion of ``serving_latency.py``: the same two models, trained for
one epoch (here on the GPU), saved with ``ranking.serve.save_ranker`` and loaded
back, then timed on home-feed requests of N candidates encoded by
``Ranker.encode_request``. What is timed is what a server waits on: the
request's encoded rows start on the host, are copied to the GPU, scored, and
the probabilities come back to the host (``torch.cuda.synchronize`` included).

Variants:

- ``cpu fp32``: the eager model on one thread of this machine's CPU, for scale;
- ``fp32`` / ``bf16``: the eager model on the GPU, bf16 by ``torch.autocast``
  (TF32 switched off, so fp32 is real fp32);
- ``fp32 graph`` / ``bf16 graph``: the same forward captured once per N in a
  CUDA graph (static input buffers, one replay per request). A small model's
  forward is dozens of tiny kernels, so on a GPU its latency is kernel-launch
  overhead; a graph launches them all at once.

Each run records p50/p99/mean milliseconds over the repeats and the largest
probability difference from the GPU fp32 eager run.
"""

from __future__ import annotations

import sys

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.serve import load_ranker
from ranking.simulate import AdLogConfig
from serving_latency import MODELS, encoded_log, make_requests, percentiles_ms, train_and_save


def eager_call(model: torch.nn.Module, task: str, device: torch.device, dtype: torch.dtype | None):
    """Host rows -> device -> probabilities on the host, autocast to ``dtype`` when given."""
    def run(request: dict) -> torch.Tensor:
        data = {key: value.to(device, non_blocking=True) for key, value in request["data"].items()}
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            probs = torch.sigmoid(model(data)[task].float())
        return probs.cpu()
    return run


def graph_call(model: torch.nn.Module, task: str, example: dict, dtype: torch.dtype | None):
    """The same as ``eager_call``, its forward captured in a CUDA graph for ``example``'s shape."""
    static = {key: value.cuda().clone() for key, value in example["data"].items()}

    def forward() -> torch.Tensor:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            return torch.sigmoid(model(static)[task].float())

    with torch.inference_mode():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):                                   # warm-up before capture
                forward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_probs = forward()

    def run(request: dict) -> torch.Tensor:
        for key, value in request["data"].items():
            static[key].copy_(value, non_blocking=True)
        graph.replay()
        return static_probs.cpu()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="book", choices=["smoke", "moderate", "book"])
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=300, help="timed requests per run")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("serving_latency_gpu.py needs a CUDA GPU; use serving_latency.py on a CPU")
    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = torch.device("cuda")

    encoder, train, valid = encoded_log(args.scale)

    runs, rng = [], np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            saved, _ = train_and_save(name, encoder, train, valid, Path(scratch) / name,
                                      device=gpu)
            ranker = load_ranker(saved)
            cpu_model = ranker.model.eval()
            gpu_model = load_ranker(saved).model.to(gpu).eval()
            n_items = len(ranker.tables["item_category"])
            for n in sorted({min(n, n_items) for n in args.candidates}):
                requests = make_requests(ranker, n, 20, rng)
                variants = {
                    "cpu fp32": eager_call(cpu_model, ranker.task, torch.device("cpu"), None),
                    "fp32": eager_call(gpu_model, ranker.task, gpu, None),
                    "bf16": eager_call(gpu_model, ranker.task, gpu, torch.bfloat16),
                    "fp32 graph": graph_call(gpu_model, ranker.task, requests[0], None),
                    "bf16 graph": graph_call(gpu_model, ranker.task, requests[0], torch.bfloat16),
                }
                reference = [variants["fp32"](request) for request in requests]
                for variant, call in variants.items():
                    difference = max(float((call(request) - expected).abs().max())
                                     for request, expected in zip(requests, reference))
                    runs.append({"model": name, "variant": variant, "candidates": n,
                                 **percentiles_ms(call, requests, args.repeats),
                                 "max_abs_diff_vs_fp32": difference})
                    print(f"{name:<12} {variant:<10} N={n:>5}: p50 {runs[-1]['p50_ms']:7.3f} ms,"
                          f" p99 {runs[-1]['p99_ms']:7.3f} ms, max |dp| {difference:.1e}",
                          flush=True)
    result = {"scale": args.scale, "n_items": AdLogConfig.preset(args.scale).n_items, "repeats": args.repeats,
              "tf32": False, "models": {name: config for name, (_, config) in MODELS.items()},
              "runs": runs}
    print("wrote", write_result("serving_latency_gpu", result, __file__))


if __name__ == "__main__":
    main()
