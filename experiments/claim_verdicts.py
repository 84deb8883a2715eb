"""Claim verdicts per generator seed: the claim tests (tests/claims) re-run on other simulated logs.

    .venv/bin/python experiments/claim_verdicts.py                  # generator seeds 0 and 1
    .venv/bin/python experiments/claim_verdicts.py --seeds 0 1 2
    .venv/bin/python experiments/claim_verdicts.py --xml-dir /tmp/claims --reuse   # re-read finished runs

The claim tests are the measurements: each simulates its log(s) with the
generator seed ``RANKING_CLAIM_SEED`` (0 unless set; model and training seeds
stay fixed), asserts a claim with a margin, and records what it measured with
``record_property`` (``effect``, signed so that positive is the claim's
direction, the ``threshold`` the test compares it with, the test's ``kind`` and
the numbers behind them) and its claim (``@pytest.mark.claim(n)``). For each
seed this script runs

    RANKING_CLAIM_SEED=<seed> python -m pytest tests/claims -p no:cacheprovider --junitxml=<xml> \
        -o junit_family=xunit1

(xunit1: pytest's default junit format drops the recorded properties), one
seed after the other, single-process, reads every test's outcome and
properties from the junit XML, and writes results/claim_verdicts-<device>.json:
per claim (1 to 11) its chapter, a one-line statement, what its tests leave
out, per test the outcome and measurements per seed, a verdict per seed
("holds": every test passes; "partly": some do; "does not hold": none do) and
``fragile``: the verdicts differ between seeds, or an ``effect`` (or
``effect_<what>``) of a test of kind "effect" has a different sign on one seed
than on another. The effects of "no worse than" tests (a change the claim says
is harmless, allowed down to a negative threshold) sit near zero, where their
sign is noise: their sign changes are listed but do not make a claim fragile.
Claims without a test are listed as such. A failing test is a result, not an
error of this script; a test that errors leaves its claim "not measured" on that
seed. Expect several minutes per seed on a 2-core CPU (book-scale logs and a few
dozen trainings).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from machine import write_result  # noqa: E402

NAME = "claim_verdicts"
ROOT = Path(__file__).resolve().parent.parent
SEED_VARIABLE = "RANKING_CLAIM_SEED"

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


def run_seed(seed: int, xml: Path, tests: str) -> dict:
    """Run the claim tests on generator seed ``seed``; the junit XML goes to ``xml``."""
    env = {**os.environ, SEED_VARIABLE: str(seed), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", tests, "-p", "no:cacheprovider", f"--junitxml={xml}",
               "-o", "junit_family=xunit1", "-q"]   # xunit2 (the default) drops record_property's properties
    log = xml.with_suffix(".log")
    print(f"seed {seed}: {' '.join(command[1:])} (log: {log})", flush=True)
    started = time.perf_counter()
    with open(log, "w") as output:
        exit_code = subprocess.call(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    run = {"seed": seed, "exit_code": exit_code, "wall_seconds": round(time.perf_counter() - started, 1)}
    xml.with_suffix(".json").write_text(json.dumps(run) + "\n")
    return run


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


def verdict(outcomes: list[str]) -> str:
    """'holds' when every measured test passed, 'partly' when some did, 'does not hold' when none did."""
    measured = [outcome for outcome in outcomes if outcome in ("passed", "failed")]
    if not measured:
        return "not measured"
    passed = measured.count("passed")
    return "holds" if passed == len(measured) else "partly" if passed else "does not hold"


def _sign(value) -> int:
    return 0 if not isinstance(value, float) or value == 0 else (1 if value > 0 else -1)


def sign_changes(test: dict, seeds: list[int]) -> list[str]:
    """The effect properties of ``test`` that are positive on one seed and negative on another."""
    names = sorted({name for seed in seeds for name in test["seeds"][str(seed)]["properties"]
                    if name == "effect" or name.startswith("effect_")})
    changed = []
    for name in names:
        signs = {_sign(test["seeds"][str(seed)]["properties"].get(name)) for seed in seeds}
        if {1, -1} <= signs:
            changed.append(name)
    return changed


def assemble(seeds: list[int], junit: dict[int, dict]) -> tuple[dict, dict]:
    """Per claim: tests, verdicts, fragility; and the tests that name no claim."""
    by_claim: dict[int, dict] = {number: {} for number in CLAIMS}
    others = {}
    test_ids = list(dict.fromkeys(test_id for seed in seeds for test_id in junit[seed]["tests"]))
    for test_id in test_ids:
        per_seed, claim, kind = {}, None, None
        for seed in seeds:
            found = junit[seed]["tests"].get(test_id, {"outcome": "missing", "message": None, "seconds": None,
                                                         "properties": {}})
            properties = dict(found["properties"])
            claim = int(properties.pop("claim")) if "claim" in properties else claim
            kind = properties.pop("kind", kind)
            per_seed[str(seed)] = {**found, "properties": properties}
        test = {"kind": kind, "seeds": per_seed}
        test["sign_changes"] = sign_changes(test, seeds)
        if claim in by_claim:
            by_claim[claim][test_id] = test
        else:
            others[test_id] = test

    claims = {}
    for number, info in CLAIMS.items():
        tests = by_claim[number]
        entry = {"chapter": info["chapter"], "statement": info["statement"], "has_test": bool(tests),
                 "untested": info["untested"] if tests else "no test", "tests": tests}
        if not tests:
            entry.update(verdicts={str(seed): None for seed in seeds}, fragile=None, fragile_reasons=[])
            claims[str(number)] = entry
            continue
        verdicts = {str(seed): verdict([test["seeds"][str(seed)]["outcome"] for test in tests.values()])
                    for seed in seeds}
        reasons = []
        measured = {value for value in verdicts.values() if value != "not measured"}
        if len(measured) > 1:
            reasons.append("verdicts differ between seeds: " + ", ".join(f"seed {s} {v}" for s, v in verdicts.items()))
        for test_id, test in tests.items():
            if test["kind"] == "effect":
                reasons += [f"{test_id.split('::')[1]}: {name} changes sign" for name in test["sign_changes"]]
        entry.update(verdicts=verdicts, fragile=bool(reasons), fragile_reasons=reasons)
        claims[str(number)] = entry
    return claims, others


def summary_rows(claims: dict, seeds: list[int]) -> list[str]:
    """One line per test (claim, verdicts, effect vs threshold per seed), for the printed table."""
    lines = [f"{'claim':<6}{'chapter':<18}{'verdict per seed':<30}{'fragile':<9}test: effect (threshold) per seed"]
    for number, claim in claims.items():
        verdicts = " / ".join(str(claim["verdicts"][str(seed)]) for seed in seeds) if claim["has_test"] else "no test"
        fragile = "-" if claim["fragile"] is None else "yes" if claim["fragile"] else "no"
        first = f"{number:<6}{claim['chapter']:<18}{verdicts:<30}{fragile:<9}"
        if not claim["tests"]:
            lines.append(first)
        for index, (test_id, test) in enumerate(claim["tests"].items()):
            cells = []
            for seed in seeds:
                found = test["seeds"][str(seed)]
                effect, threshold = found["properties"].get("effect"), found["properties"].get("threshold")
                mark = {"passed": "ok", "failed": "FAIL"}.get(found["outcome"], found["outcome"].upper())
                shown = "n/a" if effect is None else f"{effect:+.4g}"
                cells.append(f"{shown} {mark}")
            threshold = next((test["seeds"][str(seed)]["properties"].get("threshold") for seed in seeds
                              if test["seeds"][str(seed)]["properties"].get("threshold") is not None), None)
            name = test_id.split("::")[1].removeprefix("test_")[:46]
            row = f"{name}: {' | '.join(cells)} (> {threshold:+.4g})" if threshold is not None else \
                f"{name}: {' | '.join(cells)}"
            lines.append((first if index == 0 else " " * len(first)) + row)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="generator seeds (default 0 1)")
    parser.add_argument("--tests", default="tests/claims", help="the claim tests (default tests/claims)")
    parser.add_argument("--xml-dir", type=Path, default=None,
                        help="keep each seed's junit XML, log and run record here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true",
                        help="read a seed's XML from --xml-dir when it is there instead of running it again")
    args = parser.parse_args()
    if any(seed < 0 for seed in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct non-negative integers")
    if args.reuse and args.xml_dir is None:
        parser.error("--reuse needs --xml-dir")

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.xml_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        runs, junit = {}, {}
        for seed in args.seeds:
            xml = folder / f"claims-seed{seed}.xml"
            if args.reuse and xml.exists() and xml.with_suffix(".json").exists():
                run = json.loads(xml.with_suffix(".json").read_text())
                print(f"seed {seed}: reusing {xml}", flush=True)
            else:
                run = run_seed(seed, xml, args.tests)
            if not xml.exists():
                raise SystemExit(f"seed {seed}: pytest wrote no junit XML (exit code {run['exit_code']}); "
                                 f"see {xml.with_suffix('.log')}")
            junit[seed] = read_junit(xml)
            runs[str(seed)] = {**run, **junit[seed]["totals"]}
            print(f"seed {seed}: {runs[str(seed)]}", flush=True)

    claims, others = assemble(args.seeds, junit)
    result = {
        "seeds": args.seeds,
        "seed_variable": SEED_VARIABLE,
        "command": f"{SEED_VARIABLE}=<seed> python -m pytest {args.tests} -p no:cacheprovider --junitxml=<xml> "
                   "-o junit_family=xunit1",
        "rules": {
            "verdict": "holds: every test of the claim passed on that seed; partly: some did; does not hold: "
                       "none did; not measured: its tests errored; null: the claim has no test",
            "effect": "each test records effect (positive: the claim's direction) and the threshold its main "
                      "assertion compares it with (the test needs effect > threshold); kind 'effect': a "
                      "difference the claim predicts; 'no worse than': a change the claim calls harmless, "
                      "allowed down to a negative threshold; 'level': a quantity above a bar",
            "fragile": "the verdicts differ between seeds, or effect / effect_<what> of a test of kind 'effect' "
                       "is positive on one seed and negative on another",
        },
        "runs": runs,
        "claims": claims,
        "claims_without_test": [int(number) for number, claim in claims.items() if not claim["has_test"]],
        "fragile_claims": [int(number) for number, claim in claims.items() if claim["fragile"]],
        "other_tests": others,
    }
    path = write_result(NAME, result, __file__)

    print()
    print("\n".join(summary_rows(claims, args.seeds)))
    print()
    for seed in args.seeds:
        run = runs[str(seed)]
        print(f"seed {seed}: {run['tests']} tests, {run['failures']} failed, {run['errors']} errors, "
              f"{run['wall_seconds']:.0f} s")
    for test_id, test in others.items():
        outcomes = ", ".join(f"seed {seed} {test['seeds'][str(seed)]['outcome']}" for seed in args.seeds)
        print(f"not a claim: {test_id.split('::')[1]}: {outcomes}")
    print(f"fragile claims: {result['fragile_claims'] or 'none'}; without a test: "
          f"{result['claims_without_test'] or 'none'}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
