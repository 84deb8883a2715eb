"""The bootstrap over users (ranking.bootstrap): whole users, paired models, honest width."""

import numpy as np
import pytest

from ranking.bootstrap import group_bootstrap, paired_difference, resampled_rows
from ranking.metrics import auc, logloss


def test_a_resample_keeps_every_drawn_user_whole():
    codes = np.array([0, 0, 0, 1, 2, 2])
    rows = resampled_rows(codes, np.random.default_rng(1))
    counts = np.bincount(rows, minlength=len(codes))
    for group in range(3):
        mine = counts[codes == group]
        assert (mine == mine[0]).all()                # all of a user's rows, or none
    drawn = [counts[codes == group][0] for group in range(3)]
    assert sum(drawn) == 3                            # as many draws as users


def _clustered(n_users=200, rows=20, seed=0):
    """Rows whose model error is shared within each user: a user is easy or hard."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), rows)
    user_shift = rng.normal(0, 1.0, n_users)[users]
    truth = 1 / (1 + np.exp(-user_shift))
    labels = (rng.random(len(users)) < truth).astype(float)
    good = np.clip(truth, 0.02, 0.98)
    blind = np.full(len(users), labels.mean())
    return users, labels, good, blind


def test_identical_models_differ_by_exactly_nothing():
    users, labels, good, _ = _clustered()
    result = paired_difference(users, labels, good, good.copy(), resamples=50)
    assert result.estimate == result.low == result.high == 0.0


def test_the_interval_brackets_the_estimate_and_is_reproducible():
    users, labels, good, blind = _clustered()
    one = paired_difference(users, labels, good, blind, resamples=200, seed=4)
    two = paired_difference(users, labels, good, blind, resamples=200, seed=4)
    assert one == two
    assert one.low < one.estimate < one.high < 0        # the informed model is better
    assert one.estimate == pytest.approx(logloss(labels, good) - logloss(labels, blind))


def test_resampling_users_is_wider_than_resampling_rows_when_users_differ():
    users, labels, good, blind = _clustered()
    by_user = paired_difference(users, labels, good, blind, resamples=300)
    by_row = paired_difference(np.arange(len(users)), labels, good, blind, resamples=300)
    assert (by_user.high - by_user.low) > 1.5 * (by_row.high - by_row.low)


def test_runs_are_averaged_before_the_difference():
    users, labels, good, blind = _clustered()
    noisy = np.clip(good + np.random.default_rng(2).normal(0, 0.05, len(good)), 0.01, 0.99)
    both = paired_difference(users, labels, np.stack([good, noisy]),
                             np.stack([blind, blind]), auc, resamples=20)
    expected = (auc(labels, good) + auc(labels, noisy)) / 2 - auc(labels, blind)
    assert both.estimate == pytest.approx(expected)


def test_runs_that_disagree_widen_the_interval():
    users, labels, good, blind = _clustered()
    worse = np.clip(0.5 + 0.3 * (good - 0.5), 0.01, 0.99)       # a run that learned less
    one_run = paired_difference(users, labels, good, blind, resamples=300)
    two_runs = paired_difference(users, labels, np.stack([good, worse]),
                                 np.stack([blind, blind]), resamples=300)
    assert (two_runs.high - two_runs.low) > 1.5 * (one_run.high - one_run.low)
    assert two_runs.low <= logloss(labels, good) - logloss(labels, blind) + 1e-3


def test_models_with_different_numbers_of_runs_are_refused():
    users, labels, good, blind = _clustered(n_users=5, rows=2)
    with pytest.raises(ValueError, match="2 runs and probs_b 1"):
        paired_difference(users, labels, np.stack([good, good]), blind)


def test_a_statistic_of_the_rows_gets_an_interval_that_covers_the_truth_mostly():
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        users = np.repeat(np.arange(60), 5)
        values = rng.normal(rng.normal(0, 1, 60)[users], 0.5)     # true mean 0
        result = group_bootstrap(users, lambda rows: values[rows].mean(), resamples=200,
                                 seed=seed)
        covered += result.low <= 0.0 <= result.high
    assert covered >= 33                                # about 95% of 40


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=np.arange(3)), "groups has 3 entries"),
    (dict(probs_a=np.ones((2, 2, 10)) / 2), "probs_a must be"),
])
def test_bad_inputs_are_named(kwargs, message):
    users, labels, good, blind = _clustered(n_users=5, rows=2)
    arguments = {**dict(groups=users, labels=labels, probs_a=good, probs_b=blind), **kwargs}
    with pytest.raises(ValueError, match=message):
        paired_difference(**arguments)


def test_group_bootstrap_checks_its_settings():
    with pytest.raises(ValueError, match="confidence"):
        group_bootstrap(np.arange(4), lambda rows: 0.0, confidence=1.5)
    with pytest.raises(ValueError, match="groups"):
        group_bootstrap(np.array([]), lambda rows: 0.0)
