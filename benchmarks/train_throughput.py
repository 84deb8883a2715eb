"""Training speed of the deep models: examples per second through ``ranking.train.fit``.

    PYTHONPATH=. .venv/bin/python benchmarks/train_throughput.py --scale book
    python benchmarks/train_throughput.py --scale book --batch-sizes 4096 32768   # on a GPU

Each model trains for a few epochs on the first ``--batches`` batches of the
log's real features (ids and dense, no sequences), for each batch size, with the
same loop the chapters use (Adam, shuffled in-memory batches, loss bookkeeping).
The fastest epoch counts: the first one also pays for warm-up. Runs in fp32
and under bf16 autocast. bf16 pays off on a GPU with tensor cores, and on a CPU
only if it has bf16 instructions (AVX512-BF16 or AMX, recorded in the result);
without them it is several times slower than fp32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402
from ranking.batches import subset
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.nn import DCNv2, EmbeddingMLP
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.train import PRECISIONS, fit

MODELS = {
    "EmbeddingMLP": lambda cardinalities, n_dense: EmbeddingMLP(cardinalities, n_dense),
    "DCNv2": lambda cardinalities, n_dense: DCNv2(cardinalities, n_dense, cross_layers=3),
}
"""Both with their defaults: embedding_dim 16, hidden (256, 128); DCNv2 with 3 cross layers."""


def examples_per_second(model: torch.nn.Module, data: dict[str, torch.Tensor], batch_size: int,
                        epochs: int, device: str, precision: str) -> float:
    """Rows per second of the fastest of ``epochs`` training epochs over ``data``."""
    result = fit(model, data, epochs=epochs, batch_size=batch_size, device=device, precision=precision,
                 progress=False)
    return len(data["label_click"]) / float(result.history["seconds"].min())


def cpu_bf16_instructions() -> list[str]:
    """The CPU's bf16 instruction sets (Linux only; empty elsewhere or without any)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(flag for flag in set(flags) if flag in ("avx512_bf16", "amx_bf16"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="smoke", choices=["smoke", "book", "gpu"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[4096])
    parser.add_argument("--batches", type=int, default=40, help="batches of the largest size per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the fastest counts")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(PRECISIONS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    logs = load_or_simulate(AdLogConfig.preset(args.scale), seed=0)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",)))
    data = encoder.fit(logs.impressions).transform(logs.impressions)
    rows = min(args.batches * max(args.batch_sizes), len(logs.impressions))
    data = subset(data, torch.arange(rows))

    runs = []
    for name, build in MODELS.items():
        for batch_size in args.batch_sizes:
            for precision in args.precisions:
                torch.manual_seed(0)
                model = build(encoder.cardinalities, encoder.n_dense)
                rate = examples_per_second(model, data, batch_size, args.epochs, device, precision)
                runs.append({"model": name, "batch_size": batch_size, "precision": precision,
                             "device": device, "parameters": sum(p.numel() for p in model.parameters()),
                             "examples_per_s": round(rate)})

    print(f"{'model':<14}{'batch':>7}  {'precision':<11}{'device':<8}{'parameters':>12}{'examples/s':>13}")
    for run in runs:
        print(f"{run['model']:<14}{run['batch_size']:>7}  {run['precision']:<11}{run['device']:<8}"
              f"{run['parameters']:>12,}{run['examples_per_s']:>13,}")
    result = {"scale": args.scale, "rows_per_epoch": rows, "batch_sizes": args.batch_sizes,
              "epochs": args.epochs, "cpu_bf16_instructions": cpu_bf16_instructions(),
              "features": {"categorical": list(encoder.spec.categorical), "n_dense": encoder.n_dense},
              "runs": runs}
    print("wrote", write_result("train_throughput", result, __file__))


if __name__ == "__main__":
    main()
