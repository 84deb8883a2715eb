"""Peak memory and speed of the sequence features: gathered per batch vs materialized.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sequence_memory.py --scale book --scale gpu

Every run below is a fresh process, and its memory is that process's resident-set
high-water mark (``getrusage(RUSAGE_SELF).ru_maxrss``), read at the end of each
stage: the most the whole process held up to then, Python, torch and the log
included, not only the arrays of interest. Since the mark only rises, a stage's
number includes the stages before it. For each scale:

- generate: simulate the log and save it (to a temporary folder, so it really runs);
- gathered, for each L: load the saved log (``load``), fit the encoder and encode the
  training split: ids, dense, labels, history indices and the EventHistory
  (``encode``), then shuffled batches of ``--batch-size`` rows with their last L
  events gathered (``batches``; batches per second over ``--batches`` batches);
- end_to_end, for each L: generate, encode and iterate in one process, as a fresh
  Colab session does (``generate`` is its mark after the log is saved);
- materialized, for each L, on the ``--materialized`` scales: the former encoder,
  one (N, L) block per impression (tests/unit/sequence_reference.py), then batches
  sliced from it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _peak_mib() -> int:
    """The process's resident-set high-water mark so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _mib(tensors) -> float:
    return round(sum(tensor.nbytes for tensor in tensors) / 2**20, 1)


def _batches_per_second(data, history, batch_size: int, n_batches: int, device: str) -> float:
    """Shuffled batches per second, sequences gathered (history) or sliced (materialized)."""
    from ranking.batches import Batches, to_device

    data = to_device(data, device)
    history = history.to(device) if history is not None else None
    epochs = Batches(data, batch_size, seed=0, history=history)
    batches = (batch for _ in iter(int, 1) for batch in epochs)   # epoch after epoch
    for _ in range(3):   # warm-up
        next(batches)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n_batches):
        batch = next(batches)
    batch["seq_item_id"].sum().item()   # waits for the device
    return n_batches / (time.perf_counter() - start)


def _run(kind: str, scale: str, length: int, data_dir: str, batch_size: int, n_batches: int,
         queue) -> None:
    """One run in this fresh process; puts its stages' peaks and rates on ``queue``."""
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from sequence_reference import materialized_sequences

    from ranking.features import FeatureEncoder, FeatureSpec, time_split
    from ranking.simulate import AdLogConfig, load_or_simulate

    torch.set_num_threads(1)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = {"run": kind, "scale": scale, "L": length, "imports_mib": _peak_mib()}
    start = time.perf_counter()
    logs = load_or_simulate(AdLogConfig.preset(scale), seed=0, data_dir=data_dir)
    stage = "generate" if kind in ("generate", "end_to_end") else "load"
    result.update({f"{stage}_mib": _peak_mib(), f"{stage}_s": round(time.perf_counter() - start, 1),
                   "events": len(logs.events)})
    if kind != "generate":
        start = time.perf_counter()
        train = time_split(logs.impressions, valid_days=2, test_days=2)[0]
        spec = FeatureSpec(sequence_length=0 if kind == "materialized" else length)
        encoder = FeatureEncoder(logs, spec).fit(train)
        data = encoder.transform(train)
        history = encoder.history
        if kind == "materialized":
            data.update(materialized_sequences(logs.events, train, length))
        else:   # its tensors and the int64 sort keys
            result["history_mib"] = _mib([history.item_id, history.category, history.action,
                                          history.timestamp, torch.empty(len(history))])
        result.update({"train_rows": len(train), "encoded_mib": _mib(data.values()),
                       "encode_mib": _peak_mib(), "encode_s": round(time.perf_counter() - start, 1)})
        rate = _batches_per_second(data, history, batch_size, n_batches, device)
        result.update({"batches_mib": _peak_mib(), "batches_per_s": round(rate, 1),
                       "device": device})
    queue.put(result)


def _in_fresh_process(*args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run, args=(*args, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the run {args[:3]} failed (exit code {process.exitcode})")
    result = queue.get()
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="append", choices=["smoke", "book", "gpu"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 100])
    parser.add_argument("--materialized", action="append", choices=["smoke", "book", "gpu"],
                        help="scales to run the former (N, L) encoder at (default: book)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--batches", type=int, default=200, help="batches timed per run")
    args = parser.parse_args()
    materialized = args.materialized or ["book"]
    runs = []

    def record(result: dict) -> None:   # written after every run: a long one may be cut off
        runs.append(result)
        write_result("sequence_memory", {"batch_size": args.batch_size,
                                         "batches_timed": args.batches, "runs": runs}, __file__)

    for scale in args.scale or ["book"]:
        with tempfile.TemporaryDirectory() as data_dir:
            record(_in_fresh_process("generate", scale, 0, data_dir, args.batch_size, 0))
            for length in args.lengths:
                record(_in_fresh_process("gathered", scale, length, data_dir, args.batch_size,
                                         args.batches))
                if scale in materialized:
                    record(_in_fresh_process("materialized", scale, length, data_dir,
                                             args.batch_size, args.batches))
        for length in args.lengths:
            with tempfile.TemporaryDirectory() as data_dir:
                record(_in_fresh_process("end_to_end", scale, length, data_dir,
                                         args.batch_size, args.batches))
    print("wrote", write_result("sequence_memory", {"batch_size": args.batch_size,
                                                    "batches_timed": args.batches,
                                                    "runs": runs}, __file__))


if __name__ == "__main__":
    main()
