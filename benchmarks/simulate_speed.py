"""How long the generator takes and how much memory it needs, per scale.

    python benchmarks/simulate_speed.py --scale book

Peak memory is the resident-set high-water mark of a fresh child process, so
each scale is measured on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json
import multiprocessing
import resource
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402


def _measure(scale: str, seed: int, queue) -> None:
    from ranking.simulate import AdLogConfig, simulate

    config = AdLogConfig.preset(scale)
    start = time.perf_counter()
    logs = simulate(config, seed=seed)
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"scale": scale, "seed": seed, "seconds": round(seconds, 2),
               "peak_rss_mib": round(peak_mib), "impressions": len(logs.impressions),
               "events": len(logs.events), "users": config.n_users, "items": config.n_items})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", action="append", choices=["smoke", "book", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = []
    for scale in args.scale or ["smoke", "book"]:
        queue = multiprocessing.get_context("spawn").Queue()
        process = multiprocessing.get_context("spawn").Process(target=_measure, args=(scale, args.seed, queue))
        process.start()
        result = queue.get()
        process.join()
        print(json.dumps(result))
        runs.append(result)
    print("wrote", write_result("simulate_speed", {"runs": runs}, __file__))


if __name__ == "__main__":
    main()
