"""Fixtures the unit tests share: the smoke log, generated once per test session."""

import pytest

from ranking.features import time_split
from ranking.simulate import AdLogConfig, load_or_simulate


@pytest.fixture(scope="session")
def logs():
    """The smoke log of generator seed 0 (cached under data/ like the chapters')."""
    return load_or_simulate(AdLogConfig.preset("smoke"), seed=0)


@pytest.fixture(scope="session")
def split(logs):
    """Its train, valid and test frames: the last two days test, the two before valid."""
    return time_split(logs.impressions, valid_days=2, test_days=2)
