"""Claim verdicts over generator worlds: the claim tests (tests/claims) run on five simulated logs.

    make verdicts                                                    # worlds 0-4, one per core
    .venv/bin/python experiments/claim_verdicts.py --worlds 0 1 2 --workers 2
    .venv/bin/python experiments/claim_verdicts.py --xml-dir /tmp/claims --reuse   # re-read finished runs

The claim tests are the measurements: each simulates its log(s) with the
generator seed ``RANKING_CLAIM_SEED`` (a *world*: 0 unless set; model and
training seeds stay fixed), asserts a claim with a margin on that one world,
and records what it measured with ``record_property``: ``effect``, signed so
that positive is the claim's direction (a paired difference where two models
are compared on the same world), the ``threshold`` (margin) it compares it
with, the test's ``kind`` and the numbers behind them; ``@pytest.mark.claim(n)``
names its claim. For each world this script runs

    RANKING_CLAIM_SEED=<world> python -m pytest tests/claims -p no:cacheprovider --junitxml=<xml> \
        -o junit_family=xunit1

(xunit1: pytest's default junit format drops the recorded properties), as many
worlds at once as ``--workers`` (default: one per core), reads every test's
outcome and properties from the junit XML, and writes
results/claim_verdicts-<device>.json with the code version it ran on. Per test:
the effect on each world, their mean and 95% interval over the worlds, the
verdict the interval gives (``ranking.verdicts``: holds, no effect, reverses,
mixed) and on how many worlds the effect alone clears the margin; per claim,
one verdict from its tests'. A failing test is a measurement, not an error of
this script; a test that errors on some world is left out of the interval and
named. Expect 12 to 25 minutes per world on one core of a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

from ranking.verdicts import (CONFIDENCE, claim_verdict, interval, verdict,  # noqa: E402
                              worlds_agreeing)

NAME = "claim_verdicts"
ROOT = Path(__file__).resolve().parent.parent
SEED_VARIABLE = "RANKING_CLAIM_SEED"
WORLDS = (0, 1, 2, 3, 4)
TARGETS = {
    "save_head_gap_closed": dict(test="test_claim7_the_save_weight_moves_videos_into_the_top_slots",
                                 low=0.03, high=None,
                                 what="share of the save head's oracle gap closed (chapter 4's ranker)"),
    "ratio_delayed_feedback": dict(test="test_the_delayed_feedback_model_restores_the_ratio",
                                   low=0.90, high=1.10,
                                   what="the delayed-feedback model's mean prediction / mean truth"),
}
"""Per-world targets for the training recipe: a property a claim test records, and its bounds."""

CLAIMS = {
    1: dict(chapter="ch3 deep model",
            statement="GBDT plateaus as data grows; a DNN with embeddings keeps improving.",
            untested="ID cardinality is not varied: the tests grow the training days only."),
    2: dict(chapter="ch4 multitask",
            statement="Multi-task learning lets an abundant task (click) lift a sparse one (conversion).",
            untested=None),
    3: dict(chapter="ch4 multitask",
            statement="Other tasks can cost a shared bottom's click (negative transfer); MMoE reduces the cost.",
            untested=None),
    4: dict(chapter="ch5 multitower",
            statement="A shared bottom with one tower per data source beats one tower on the mixed sources.",
            untested=None),
    5: dict(chapter="ch6 sequences",
            statement="User sequences help; a time-aware Transformer beats sum pooling; long-short interest "
                      "adds signal.",
            untested="more layers vs more heads, interval sum pooling as a cheap baseline, and DIN not beating "
                     "the others are chapter 6's measurements, not tests."),
    6: dict(chapter="ch7 calibration",
            statement="Platt scaling keeps the ranking; context-aware calibration cuts the calibration error "
                      "by up to 80%.",
            untested="that plain Platt scaling lowers the error of a miscalibrated head is recorded "
                     "(ece_Platt against ece_uncalibrated), not asserted."),
    7: dict(chapter="ch4 multitask",
            statement="Calibrated heads make utility-weighted ranking adjustable: a higher save weight shows "
                      "more videos.",
            untested=None),
    8: dict(chapter="ch8 sixteen bits",
            statement="fp16 overflows in a DCN V2 cross layer on raw inputs, bf16 does not; 16-bit inference "
                      "keeps the accuracy.",
            untested="'about 30% faster on a GPU' needs a GPU: see benchmarks/results/inference_precision-gpu.json."),
    9: dict(chapter="ch8 sixteen bits",
            statement="Batch Norm explodes after a feature outage; Resilient Batch Norm does not.",
            untested=None),
    10: dict(chapter="ch7 calibration",
             statement="Delayed conversion labels bias naive training low; a delayed-feedback model corrects it.",
             untested="label noise (advertiser-reported conversions) is not tested; sparsity is claim 2's test."),
    11: dict(chapter="ch9 shipping",
             statement="Score regularization (distillation from yesterday's model) keeps retrained rankings "
                       "stable.",
             untested=None),
}
"""The book's claims (shared/seeds/README.md), the chapter that measures each, and what its tests leave out."""


def _number(text: str):
    """A property's value: a float when it reads as one (None when not finite), else the text."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value + 0.0 if math.isfinite(value) else None


def read_junit(xml: Path) -> dict:
    """{test id: {'outcome', 'message', 'seconds', 'properties'}} and the suite's totals."""
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    tests = {}
    for case in suite.iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (element.get("message") or "").splitlines()[0][:300] if element.get("message") else None
                break
        properties = {prop.get("name"): _number(prop.get("value"))
                      for prop in case.iter("property")}
        tests[test_id] = {"outcome": outcome, "message": message,
                          "seconds": round(float(case.get("time", 0.0)), 1), "properties": properties}
    totals = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    totals["pytest_seconds"] = round(float(suite.get("time", 0.0)), 1)
    return {"tests": tests, "totals": totals}


def run_world(world: int, xml: Path, tests: str) -> dict:
    """Run the claim tests on generator world ``world``; the junit XML goes to ``xml``."""
    env = {**os.environ, SEED_VARIABLE: str(world), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", tests, "-p", "no:cacheprovider", f"--junitxml={xml}",
               "-o", "junit_family=xunit1", "-q"]   # xunit2 (the default) drops record_property's properties
    log = xml.with_suffix(".log")
    print(f"world {world}: {' '.join(command[1:])} (log: {log})", flush=True)
    started = time.perf_counter()
    with open(log, "w") as output:
        exit_code = subprocess.call(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    run = {"world": world, "exit_code": exit_code, "wall_seconds": round(time.perf_counter() - started, 1)}
    xml.with_suffix(".json").write_text(json.dumps(run) + "\n")
    print(f"world {world}: done in {run['wall_seconds']:.0f} s (exit code {exit_code})", flush=True)
    return run


def code_version() -> dict:
    """The commit the claim tests ran on, and whether the working tree differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "ranking", "tests"))
    return {"commit": git("rev-parse", "HEAD") or None, "date": git("show", "-s", "--format=%cI", "HEAD") or None,
            "uncommitted_changes": dirty}


def summarize_test(per_world: dict, worlds: list[int]) -> dict:
    """Effects over the worlds a test measured on: the interval, its verdict, worlds past the margin."""
    measured = [w for w in worlds if per_world[str(w)]["outcome"] in ("passed", "failed")
                and isinstance(per_world[str(w)]["properties"].get("effect"), float)]
    effects = [per_world[str(w)]["properties"]["effect"] for w in measured]
    threshold = next((per_world[str(w)]["properties"].get("threshold") for w in measured), None)
    summary = {"effects": {str(w): e for w, e in zip(measured, effects)}, "threshold": threshold,
               "not_measured_on": [w for w in worlds if w not in measured]}
    if len(effects) < 2 or threshold is None:
        return {**summary, "mean": None, "low": None, "high": None, "verdict": "not measured",
                "worlds_past_margin": None}
    spread = interval(effects)
    return {**summary, "mean": spread.mean, "low": spread.low, "high": spread.high,
            "verdict": verdict(spread.low, spread.high, threshold),
            "worlds_past_margin": worlds_agreeing(effects, threshold)}


def assemble(worlds: list[int], junit: dict[int, dict]) -> tuple[dict, dict]:
    """Per claim: its tests (per world and over worlds) and its verdict; and the tests that name no claim."""
    by_claim: dict[int, dict] = {number: {} for number in CLAIMS}
    others = {}
    test_ids = list(dict.fromkeys(test_id for world in worlds for test_id in junit[world]["tests"]))
    for test_id in test_ids:
        per_world, claim, kind = {}, None, None
        for world in worlds:
            found = junit[world]["tests"].get(test_id, {"outcome": "missing", "message": None, "seconds": None,
                                                          "properties": {}})
            properties = dict(found["properties"])
            claim = int(properties.pop("claim")) if "claim" in properties else claim
            kind = properties.pop("kind", kind)
            per_world[str(world)] = {**found, "properties": properties}
        test = {"kind": kind, "worlds": per_world, **summarize_test(per_world, worlds)}
        (by_claim[claim] if claim in by_claim else others)[test_id] = test

    claims = {}
    for number, info in CLAIMS.items():
        tests = by_claim[number]
        verdicts = [test["verdict"] for test in tests.values() if test["verdict"] != "not measured"]
        claims[str(number)] = {"chapter": info["chapter"], "statement": info["statement"],
                               "untested": info["untested"], "tests": tests,
                               "verdict": claim_verdict(verdicts) if verdicts else "not measured"}
    return claims, others


def targets(claims: dict, worlds: list[int]) -> dict:
    """Each target's value on every world and whether it is met there."""
    tests = {test_id.split("::")[1]: test for claim in claims.values() for test_id, test in claim["tests"].items()}
    found = {}
    for name, target in TARGETS.items():
        test = tests.get(target["test"])
        values = {str(w): (test["worlds"][str(w)]["properties"].get(name) if test else None) for w in worlds}
        met = {w: value is not None and value >= target["low"]
               and (target["high"] is None or value <= target["high"]) for w, value in values.items()}
        found[name] = {**target, "values": values, "met": met, "met_on_every_world": all(met.values())}
    return found


def summary_rows(claims: dict) -> list[str]:
    """One line per test: claim, mean effect [interval] against the margin, verdict, worlds past it."""
    lines = [f"{'claim':<6}{'verdict':<12}{'test':<50}{'mean [95% interval]':<28}{'margin':>8}  worlds"]
    for number, claim in claims.items():
        for index, (test_id, test) in enumerate(claim["tests"].items()):
            first = f"{number:<6}{claim['verdict']:<12}" if index == 0 else " " * 18
            name = test_id.split("::")[1].removeprefix("test_")[:48]
            if test["mean"] is None:
                lines.append(f"{first}{name:<50}not measured")
                continue
            spread = f"{test['mean']:+.4f} [{test['low']:+.4f}, {test['high']:+.4f}]"
            lines.append(f"{first}{name:<50}{spread:<28}{test['threshold']:>+8.3f}  "
                         f"{test['worlds_past_margin']}/{len(test['effects'])} {test['verdict']}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=list(WORLDS),
                        help="generator seeds, one world each (default 0 1 2 3 4)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worlds run at once, each on one thread (default: one per core)")
    parser.add_argument("--tests", default="tests/claims", help="the claim tests (default tests/claims)")
    parser.add_argument("--xml-dir", type=Path, default=None,
                        help="keep each world's junit XML, log and run record here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="read a world's XML from --xml-dir when it is there instead of running it again")
    args = parser.parse_args()
    if any(world < 0 for world in args.worlds) or len(set(args.worlds)) != len(args.worlds):
        parser.error("--worlds must be distinct non-negative integers")
    if len(args.worlds) < 2:
        parser.error("--worlds needs at least two worlds: an interval needs more than one")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.reuse and args.xml_dir is None:
        parser.error("--reuse needs --xml-dir")
    version = code_version()

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.xml_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        xmls = {world: folder / f"claims-world{world}.xml" for world in args.worlds}
        reused = [w for w in args.worlds if args.reuse and xmls[w].exists() and xmls[w].with_suffix(".json").exists()]
        runs = {w: json.loads(xmls[w].with_suffix(".json").read_text()) for w in reused}
        to_run = [w for w in args.worlds if w not in reused]
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            runs.update(zip(to_run, pool.map(lambda w: run_world(w, xmls[w], args.tests), to_run)))
        junit = {}
        for world in args.worlds:
            if not xmls[world].exists():
                raise SystemExit(f"world {world}: pytest wrote no junit XML (exit code {runs[world]['exit_code']}); "
                                 f"see {xmls[world].with_suffix('.log')}")
            junit[world] = read_junit(xmls[world])
            runs[world] = {**runs[world], **junit[world]["totals"]}

    claims, others = assemble(args.worlds, junit)
    result = {
        "worlds": args.worlds,
        "seed_variable": SEED_VARIABLE,
        "code_version": version,
        "command": f"{SEED_VARIABLE}=<world> python -m pytest {args.tests} -p no:cacheprovider "
                   "--junitxml=<xml> -o junit_family=xunit1",
        "confidence": CONFIDENCE,
        "rules": {
            "effect": "each test records effect (positive: the claim's direction; a paired difference on the "
                      "same world where two models are compared) and the threshold (margin) its assertion "
                      "compares it with on one world; kind 'effect': a difference the claim predicts; "
                      "'no worse than': a change the claim calls harmless, allowed down to a negative margin; "
                      "'level': a quantity above a bar",
            "interval": f"mean of the per-world effects and its {CONFIDENCE:.0%} Student-t interval",
            "verdict": "ranking.verdicts: holds (interval past the margin), reverses (interval on the other "
                       "side of zero, or below a negative margin), no effect (interval contains zero), "
                       "mixed (otherwise); a claim: its tests' verdict when they agree, else reverses when "
                       "one reverses and none holds, else mixed",
        },
        "runs": {str(world): runs[world] for world in args.worlds},
        "targets": targets(claims, args.worlds),
        "claims": claims,
        "other_tests": others,
    }
    path = write_result(NAME, result, __file__)

    print()
    print("\n".join(summary_rows(claims)))
    print()
    for world in args.worlds:
        run = runs[world]
        print(f"world {world}: {run['tests']} tests, {run['failures']} failed, {run['errors']} errors, "
              f"{run['wall_seconds']:.0f} s")
    for name, target in result["targets"].items():
        values = ", ".join(f"{w}: {v:.3f}" if v is not None else f"{w}: n/a" for w, v in target["values"].items())
        print(f"target {name}: {values} -> {'met' if target['met_on_every_world'] else 'NOT met'} on every world")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
