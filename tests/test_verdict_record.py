"""The five-world claim record (experiments/results/claim_verdicts-cpu.json) that chapter 9 shows.

It must hold every claim on every world, and every verdict in it must follow
``ranking.verdicts``'s rule from the numbers beside it: a record edited by hand,
or written by an older runner, fails here.
"""

import json
import re
from pathlib import Path

import pytest

from ranking.verdicts import VERDICTS, claim_verdict, interval, verdict, worlds_agreeing

RECORD = Path(__file__).resolve().parents[1] / "experiments" / "results" / "claim_verdicts-cpu.json"


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(RECORD.read_text())


def each_test(record: dict):
    for number, claim in record["claims"].items():
        for test_id, test in claim["tests"].items():
            yield number, test_id, test


def test_the_record_names_its_code_version_and_five_worlds(record):
    assert re.fullmatch(r"[0-9a-f]{40}", record["code_version"]["commit"])
    assert isinstance(record["code_version"]["uncommitted_changes"], bool)
    assert len(record["worlds"]) >= 5 and len(set(record["worlds"])) == len(record["worlds"])
    assert set(record["runs"]) == {str(world) for world in record["worlds"]}


def test_every_claim_has_a_test_measured_on_every_world(record):
    assert set(record["claims"]) == {str(number) for number in range(1, 12)}
    for number, claim in record["claims"].items():
        assert claim["tests"], f"claim {number} has no test"
        for test_id, test in claim["tests"].items():
            assert test["not_measured_on"] == [], (test_id, test["not_measured_on"])
            assert set(test["effects"]) == {str(world) for world in record["worlds"]}, test_id
            for world in record["worlds"]:
                assert test["worlds"][str(world)]["outcome"] in ("passed", "failed"), (test_id, world)


def test_each_interval_and_verdict_follows_from_the_effects(record):
    for _, test_id, test in each_test(record):
        effects = list(test["effects"].values())
        spread = interval(effects, record["confidence"])
        assert (test["mean"], test["low"], test["high"]) == pytest.approx(
            (spread.mean, spread.low, spread.high)), test_id
        assert test["verdict"] == verdict(test["low"], test["high"], test["threshold"]), test_id
        assert test["worlds_past_margin"] == worlds_agreeing(effects, test["threshold"]), test_id


def test_each_claim_verdict_follows_from_its_tests(record):
    for number, claim in record["claims"].items():
        verdicts = [test["verdict"] for test in claim["tests"].values()]
        assert set(verdicts) <= set(VERDICTS), number
        assert claim["verdict"] == claim_verdict(verdicts), number


def test_the_training_targets_are_recorded_per_world(record):
    for name in ("save_head_gap_closed", "ratio_delayed_feedback"):
        target = record["targets"][name]
        assert set(target["values"]) == {str(world) for world in record["worlds"]}, name
        for world, value in target["values"].items():
            expected = value is not None and value >= target["low"] and (
                target["high"] is None or value <= target["high"])
            assert target["met"][world] == expected, (name, world)
        assert target["met_on_every_world"] == all(target["met"].values())
