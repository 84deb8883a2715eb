"""What checking a request costs: ``Ranker.rank`` and ``score_batch`` before and after
the request checks, on one CPU thread.

    git worktree add /tmp/before <commit before the checks>
    .venv/bin/python benchmarks/request_checks.py --trees before=/tmp/before after=.

Each tree is the ``ranking`` package at one commit. For each, a child process
trains chapter 9's ranker (an EmbeddingMLP, one epoch, the log of ``--scale``),
saves and loads it with that tree's code and times requests: ``rank`` of N
candidates (a random user, home feed, N distinct random items, a random hour)
and ``score_batch`` of 4,096 logged rows. The trees run in turn, ``--rounds``
times, so that both see the same machine load; the record keeps every round
and the median of the rounds' p50 and p99 with their range (the p99 of a few
hundred requests moves by 10-30% between rounds on a shared machine), and the
overhead of ``after`` against ``before``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def child(scale: str, candidates: list[int], repeats: int) -> dict:
    """Time one tree's code (the ``ranking`` on ``sys.path``); the runs as a dict."""
    import tempfile

    import torch

    import ranking
    from serving_latency import percentiles_ms      # beside this script
    from ranking.features import FeatureEncoder, FeatureSpec, time_split
    from ranking.nn import EmbeddingMLP
    from ranking.serve import load_ranker, save_ranker
    from ranking.simulate import AdLogConfig, load_or_simulate
    from ranking.train import fit

    torch.set_num_threads(1)
    logs = load_or_simulate(AdLogConfig.preset(scale), seed=0)
    train, _, test = time_split(logs.impressions, valid_days=2, test_days=2)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",)))
    encoder.fit(train)
    torch.manual_seed(0)
    config = {"embedding_dim": 16, "hidden": [256, 128]}
    model = EmbeddingMLP(encoder.cardinalities, encoder.n_dense, **config)
    fit(model, encoder.transform(train), epochs=1, batch_size=4096, progress=False)
    folder = Path(tempfile.mkdtemp()) / "ranker"
    ranker = load_ranker(save_ranker(folder, model.eval(), encoder, config))
    rng = np.random.default_rng(0)
    n_users, n_items = len(ranker.tables["user_follower_count"]), len(ranker.tables["item_category"])
    runs = []
    for n in (min(n, n_items) for n in candidates):
        requests = [dict(user_id=int(rng.integers(n_users)), surface="home_feed",
                         item_ids=rng.choice(n_items, size=n, replace=False),
                         context={"hour_of_day": int(rng.integers(24))}) for _ in range(50)]
        timing = percentiles_ms(lambda request: ranker.rank(**request), requests, repeats)
        runs.append({"call": "rank", "candidates": n, **timing})
    rows = test.iloc[:4096]
    timing = percentiles_ms(ranker.score_batch, [rows], max(repeats // 4, 20))
    runs.append({"call": "score_batch", "candidates": len(rows), **timing})
    return {"package": str(Path(ranking.__file__).parent), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", nargs="+", default=["after=."],
                        help="label=path of a checkout, e.g. before=/tmp/before after=.")
    parser.add_argument("--scale", default="book", choices=["smoke", "moderate", "book"])
    parser.add_argument("--candidates", type=int, nargs="+", default=[16, 256, 4096])
    parser.add_argument("--repeats", type=int, default=400, help="timed requests per N")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.scale, args.candidates, args.repeats)))
        return
    trees = dict(tree.split("=", 1) for tree in args.trees)
    rounds = {label: [] for label in trees}
    for round_ in range(args.rounds):
        for label, path in trees.items():
            env = {**os.environ, "PYTHONPATH": str(Path(path).resolve()),
                   "RANKING_DATA_DIR": str(ROOT / "data")}
            command = [sys.executable, __file__, "--child", "--scale", args.scale,
                       "--repeats", str(args.repeats), "--candidates",
                       *map(str, args.candidates)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            timed = json.loads(out.stdout.strip().splitlines()[-1])
            rounds[label].append(timed["runs"])
            print(f"round {round_ + 1}, {label}: {timed['package']}", flush=True)
    summary = []
    for label, per_round in rounds.items():
        for k, run in enumerate(per_round[0]):
            row = {"tree": label, "call": run["call"], "candidates": run["candidates"]}
            for key in ("p50_ms", "p99_ms"):
                values = [r[k][key] for r in per_round]
                row[key] = round(float(np.median(values)), 4)
                row[f"{key}_range"] = [round(min(values), 4), round(max(values), 4)]
            summary.append(row)
    result = {"scale": args.scale, "threads": 1, "repeats": args.repeats, "rounds": args.rounds,
              "trees": {label: _commit(path) for label, path in trees.items()},
              "summary": summary, "every_round": rounds}
    if {"before", "after"} <= set(trees):
        result["overhead_after_vs_before"] = _overhead(summary)
    print(json.dumps(result["summary"], indent=1))
    print(json.dumps(result.get("overhead_after_vs_before"), indent=1))
    write_result("request_checks", result, __file__)


def _commit(path: str) -> str:
    """The checkout's commit, with "+changes" if its ranking package differs from it."""
    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", path, *command], capture_output=True,
                              text=True).stdout.strip()
    changed = git("status", "--porcelain", "ranking")
    return git("rev-parse", "--short", "HEAD") + ("+changes" if changed else "")


def _overhead(summary: list[dict]) -> list[dict]:
    """after / before - 1 for each call and N, p50 and p99."""
    table = {(row["tree"], row["call"], row["candidates"]): row for row in summary}
    return [{"call": call, "candidates": n,
             **{f"{key}_change": round(table["after", call, n][key] / table[tree, call, n][key] - 1, 4)
                for key in ("p50_ms", "p99_ms")}}
            for (tree, call, n) in table if tree == "before"]


if __name__ == "__main__":
    main()
