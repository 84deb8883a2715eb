"""Inference speed and agreement of the deep models in fp32, bf16 and fp16.

    PYTHONPATH=. .venv/bin/python benchmarks/inference_precision.py --scale smoke   # CPU, a quick look
    python benchmarks/inference_precision.py --scale book                           # on a GPU

A serving system scores many candidates per request, so what counts is the time
of one forward pass over a batch of candidates already on the device. Each model
is first trained for one epoch in fp32 (so its weights are those of a real
model, not of a fresh initialization), then timed on batches of the test rows:

- ``fp32``: plain float32 (TF32 matmuls switched off, so it is the real fp32);
- ``bf16 autocast`` / ``fp16 autocast``: torch.autocast runs the linear layers in
  16 bits and keeps reductions in fp32, the usual way to serve in 16 bits;
- ``bf16 weights``: the whole model cast to bfloat16, embedding tables included.

For each it records the median milliseconds per batch (CUDA events on a GPU, a
wall clock on a CPU), the candidates scored per second, and how far its click
probabilities land from fp32's (largest and mean absolute difference, and how
many are not finite). Two model sizes: the book's (embedding 16, MLP 256-128)
and a wider one closer to production (embedding 64, MLP 1024-512-256), where
the matrix multiplies are large enough for tensor cores to matter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import copy
import statistics
import time

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.batches import subset
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.nn import DCNv2, EmbeddingMLP
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import fit

SIZES = {
    "book": dict(embedding_dim=16, hidden=(256, 128)),
    "wide": dict(embedding_dim=64, hidden=(1024, 512, 256)),
}
MODELS = {
    "EmbeddingMLP": lambda cardinalities, n_dense, size: EmbeddingMLP(cardinalities, n_dense, **SIZES[size]),
    "DCNv2": lambda cardinalities, n_dense, size: DCNv2(cardinalities, n_dense, cross_layers=3, **SIZES[size]),
}
MODES = ("fp32", "bf16 autocast", "fp16 autocast", "bf16 weights")


def forward_fn(model: torch.nn.Module, mode: str, device: torch.device):
    """A function batch -> click probabilities that runs ``model`` in ``mode``."""
    if mode == "bf16 weights":
        model = _bf16_copy(model)
    dtype = {"bf16 autocast": torch.bfloat16, "fp16 autocast": torch.float16}.get(mode)

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if mode == "bf16 weights":
            batch = {**batch, "dense": batch["dense"].to(torch.bfloat16)}
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return torch.sigmoid(model(batch)["click"].float())
    return forward


def _bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every parameter and buffer in bfloat16; the original stays fp32."""
    return copy.deepcopy(model).to(torch.bfloat16)


def median_ms(forward, batch: dict[str, torch.Tensor], device: torch.device, repeats: int) -> float:
    """Median milliseconds of one forward pass, after warm-up."""
    for _ in range(5):
        forward(batch)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            forward(batch)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            forward(batch)
            times.append(1000 * (time.perf_counter() - begin))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "book", "gpu"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1024, 8192, 65536])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    logs = load_or_simulate(AdLogConfig.preset(args.scale), seed=0)
    train_frame, _, test_frame = time_split(logs.impressions)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(train_frame)
    train = encoder.transform(train_frame)
    test = {key: value.to(device) for key, value in encoder.transform(test_frame).items()}
    n_test = len(test_frame)

    runs = []
    for size in args.sizes:
        for name, build in MODELS.items():
            torch.manual_seed(0)
            model = build(encoder.cardinalities, encoder.n_dense, size)
            fit(model, train, epochs=1, batch_size=4096, device=device, progress=False)
            model.eval()
            with torch.inference_mode():
                reference = forward_fn(model, "fp32", device)(test)                      # (N,)
                for mode in MODES:
                    forward = forward_fn(model, mode, device)
                    probs = forward(test)
                    finite = torch.isfinite(probs)
                    difference = (probs - reference).abs()[finite]
                    for batch_size in args.batch_sizes:
                        batch = subset(test, torch.arange(min(batch_size, n_test), device=device))
                        ms = median_ms(forward, batch, device, args.repeats)
                        runs.append({
                            "size": size, "model": name, "mode": mode, "batch_size": batch_size,
                            "device": device.type, "median_ms": round(ms, 4),
                            "candidates_per_s": round(min(batch_size, n_test) / ms * 1000),
                            "max_abs_diff_vs_fp32": float(difference.max()) if difference.numel() else None,
                            "mean_abs_diff_vs_fp32": float(difference.mean()) if difference.numel() else None,
                            "non_finite": int((~finite).sum()),
                        })
                        print(f"{size:<5} {name:<13} {mode:<14} batch {batch_size:>6}: {ms:8.3f} ms, "
                              f"max |dp| {runs[-1]['max_abs_diff_vs_fp32']:.2e}", flush=True)
    result = {"scale": args.scale, "test_rows": n_test, "tf32": False, "sizes": SIZES, "runs": runs}
    print("wrote", write_result("inference_precision", result, __file__))


if __name__ == "__main__":
    main()
