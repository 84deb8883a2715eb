"""The planted structure is there to be found: each effect a later chapter
relies on is detectable by a simple estimator at a moderate, fixed-seed scale.

Not a claim of the book: what the claims stand on. The logs' generator seeds are
11 and 12 plus ``RANKING_CLAIM_SEED`` (0 unless set), so a second claim seed
checks the structure on other logs too."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from claim_setup import generator_seed, record
from ranking.features import FeatureEncoder, FeatureSpec, time_split
from ranking.simulate import AdLogConfig, simulate

CONFIG = AdLogConfig.preset("smoke", n_impressions=150_000)


@pytest.fixture(scope="module")
def data():
    logs = simulate(CONFIG, seed=11 + generator_seed())
    train, _, test = time_split(logs.impressions, valid_days=0, test_days=4)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=8)).fit(train)
    tensors = [encoder.transform(frame) for frame in (train, test)]
    return [_design({**part, **encoder.history.gather(part)}) for part in tensors]


def _design(tensors):
    """Dense features + surface one-hot, and separately the share of the user's
    last 8 events in the candidate's category (0 for padded slots)."""
    surface = np.eye(3)[tensors["surface"].numpy()]
    base = np.hstack([tensors["dense"].numpy(), surface])
    seq_category = tensors["seq_category"].numpy() - 1          # -1: padding
    same = seq_category == tensors["category"].numpy()[:, None]
    sequence = np.stack([same[:, :2].mean(1), same.mean(1)], axis=1)
    return base, sequence, tensors["label_click"].numpy(), tensors["oracle_click"].numpy()


def _fit_logloss(train_x, train_y, test_x, test_y):
    model = LogisticRegression(max_iter=500).fit(train_x, train_y)
    return log_loss(test_y, model.predict_proba(test_x)[:, 1])


def test_recent_sequence_reveals_the_short_term_interest(data, record_property):
    (train_base, train_seq, train_y, _), (test_base, test_seq, test_y, test_oracle) = data
    without = _fit_logloss(train_base, train_y, test_base, test_y)
    with_sequence = _fit_logloss(np.hstack([train_base, train_seq]), train_y,
                                 np.hstack([test_base, test_seq]), test_y)
    oracle = log_loss(test_y, test_oracle)
    base_rate = log_loss(test_y, np.full_like(test_y, train_y.mean()))
    gain = (without - with_sequence) / (base_rate - oracle)
    record(record_property, gain, 0.05)
    assert gain > 0.05, f"sequence closes only {gain:.3f} of the gap"


def test_surfaces_change_the_feature_label_relation(record_property):
    """Item popularity raises clicks on the home feed and lowers them on search."""
    logs = simulate(CONFIG, seed=12 + generator_seed())
    impressions = logs.impressions
    popularity = np.log1p(impressions["item_save_count"].to_numpy())
    slopes = {}
    for surface in ("home_feed", "search"):
        rows = (impressions["surface"] == surface).to_numpy()
        logit = np.log(impressions["p_click"].to_numpy()[rows])
        slopes[surface] = np.polyfit(popularity[rows], logit, 1)[0]
    # effect: the home feed's slope, with search's (which must be below -0.02) beside it
    record(record_property, slopes["home_feed"], 0.05, slope_home_feed=slopes["home_feed"],
           slope_search=slopes["search"])
    assert slopes["home_feed"] > 0.05
    assert slopes["search"] < -0.02
