"""The whole ranker's parts: numeric embeddings, automatic log1p, the Closeup model, the blend."""

import numpy as np
import pytest
import torch

from ranking.blend import VALUES, evaluate_blend, slot_outcome, slot_value, tune_blend
from ranking.features import COUNT_LIKE, FeatureEncoder, FeatureSpec
from ranking.nn.closeup import Closeup
from ranking.nn.numeric import PiecewiseLinear, ScaledEmbedding
from ranking.simulate import AdLogConfig, load_or_simulate
from ranking.transforms import quantile_edges, skew_reduced_by_log1p, skewness
from ranking.whole_ranker import ABLATIONS, TASKS, build_closeup, encoder_spec

SEARCH = AdLogConfig.preset("smoke", searches_per_day=2.0)


@pytest.fixture(scope="module")
def search_logs():
    return load_or_simulate(SEARCH, seed=0)


@pytest.fixture(scope="module")
def encoded(search_logs):
    frame = search_logs.impressions
    encoder = FeatureEncoder(search_logs, encoder_spec()).fit(frame)
    data = encoder.transform(frame.iloc[:3000])
    return encoder, data


# ------------------------------------------------------------------ transforms
def test_skewness_of_known_shapes():
    rng = np.random.default_rng(0)
    assert abs(skewness(rng.normal(size=100_000))) < 0.05
    assert 1.8 < skewness(rng.exponential(size=100_000)) < 2.2
    assert skewness(np.ones(10)) == 0.0


def test_log1p_is_chosen_for_heavy_tails_only():
    rng = np.random.default_rng(0)
    assert skew_reduced_by_log1p(np.floor(50 * rng.pareto(1.2, 10_000)))
    assert not skew_reduced_by_log1p(rng.uniform(0, 10, 10_000))
    assert not skew_reduced_by_log1p(rng.normal(size=10_000))      # negative values
    assert not skew_reduced_by_log1p(np.array([]))


def test_auto_log1p_picks_the_heavy_tailed_counts(logs):
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, log1p="auto"))
    encoder.fit(logs.impressions)
    assert set(encoder.log1p_columns) <= set(COUNT_LIKE)
    assert {"user_follower_count", "item_save_count"} <= set(encoder.log1p_columns)
    assert "item_age_days" not in encoder.log1p_columns      # about uniform: no tail
    rebuilt = FeatureEncoder.from_state(encoder.state(), encoder.item_category)
    assert rebuilt.log1p_columns == encoder.log1p_columns
    frame = logs.impressions.iloc[:100]
    assert np.array_equal(rebuilt.dense(frame), encoder.dense(frame))


def test_log1p_setting_is_checked():
    with pytest.raises(ValueError, match="log1p"):
        FeatureSpec(log1p="sometimes")


def test_quantile_edges_increase_even_for_tied_columns():
    dense = torch.cat([torch.randn(1000, 1), torch.zeros(1000, 1)], dim=1)
    edges = quantile_edges(dense, n_bins=8)
    assert edges.shape == (2, 9)
    assert bool((edges[:, 1:] > edges[:, :-1]).all())
    with pytest.raises(ValueError, match="dense"):
        quantile_edges(torch.zeros(0, 3))


# ----------------------------------------------------------- numeric embeddings
def test_piecewise_linear_encoding_fills_bins_in_order():
    layer = PiecewiseLinear(torch.tensor([[0.0, 1.0, 2.0, 4.0]]), dim=3)
    codes = layer.encode(torch.tensor([[-1.0], [0.5], [1.0], [3.0], [6.0]]))[:, 0]
    expected = torch.tensor([[-1.0, 0, 0], [0.5, 0, 0], [1, 0, 0], [1, 1, 0.5], [1, 1, 2.0]])
    assert torch.allclose(codes, expected)
    assert layer(torch.randn(7, 1)).shape == (7, 1, 3)


def test_piecewise_linear_refuses_bad_edges():
    with pytest.raises(ValueError, match="increase"):
        PiecewiseLinear(torch.tensor([[0.0, 1.0, 1.0]]), dim=2)
    with pytest.raises(ValueError, match="edges"):
        PiecewiseLinear(torch.tensor([0.0, 1.0]), dim=2)


def test_scaled_embedding_is_a_line_per_column():
    layer = ScaledEmbedding(2, 4)
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    out = layer(x)
    assert torch.allclose(out[1, 0] - out[0, 0], 2 * layer.weight[0])


# -------------------------------------------------------------------- the model
def test_closeup_gives_a_finite_logit_per_task(search_logs, encoded):
    encoder, data = encoded
    torch.manual_seed(0)
    model = build_closeup(encoder, search_logs, data)
    batch = {key: value[:64] for key, value in data.items()}
    batch.update(encoder.history.gather(batch))
    logits = model(batch)
    assert set(logits) == set(TASKS)
    for logit in logits.values():
        assert logit.shape == (64,) and torch.isfinite(logit).all()
    # 3 feature groups + 2 tokens for each of 3 kinds of sequence, 32 wide
    assert model.heads.experts[0].layers[0].in_features == (3 + 2 * 3) * 32


def test_every_variant_builds_and_the_mixer_is_what_differs(search_logs, encoded):
    encoder, data = encoded
    for name, options in ABLATIONS.items():
        if "log1p" in options:
            continue                       # another encoder: checked above
        model = build_closeup(encoder, search_logs, data, **options)
        assert isinstance(model, Closeup), name
    concat = build_closeup(encoder, search_logs, data, mixer="concat")
    assert len(concat.blocks) == 0
    assert len(build_closeup(encoder, search_logs, data).blocks) == 1


def test_a_user_without_events_gets_finite_scores(search_logs, encoded):
    encoder, data = encoded
    model = build_closeup(encoder, search_logs, data).eval()
    batch = {key: value[:8] for key, value in data.items()}
    batch.update(encoder.history.gather(batch))
    for key in batch:
        if "seq_" in key and key.endswith(("item_id", "category", "action")):
            batch[key] = torch.zeros_like(batch[key])
    with torch.no_grad():
        assert all(torch.isfinite(logit).all() for logit in model(batch).values())


def test_build_refuses_a_kind_the_encoder_lacks(search_logs, logs):
    encoder = FeatureEncoder(logs, encoder_spec(kinds=("engagement",))).fit(logs.impressions)
    data = encoder.transform(logs.impressions.iloc[:100])
    with pytest.raises(ValueError, match="search"):
        build_closeup(encoder, logs, data)
    with pytest.raises(ValueError, match="numbers"):
        build_closeup(encoder, logs, data, kinds=("engagement",), numbers="splines")


# -------------------------------------------------------------------- the blend
def _requests():
    rng = np.random.default_rng(0)
    requests = np.repeat(np.arange(400), 10)
    truth = {"click": rng.uniform(0.0, 0.06, 4000), "save": rng.uniform(0, 0.03, 4000),
             "hide": rng.uniform(0, 0.01, 4000), "conversion": rng.uniform(0, 0.002, 4000)}
    return requests, truth


def test_slot_outcome_scores_the_top_slots_with_the_truth():
    requests = np.array([0, 0, 0, 1, 1])
    truth = {"click": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}
    scores = np.array([3.0, 2.0, 1.0, 0.0, 1.0])      # picks rows 0 and 4
    assert slot_outcome(scores, requests, truth, k=1)["click"] == pytest.approx(300.0)
    assert slot_value({"click": 10.0, "save": 2.0}, {"click": 1.0, "save": 3.0}) == 16.0


def test_ranking_by_the_truth_with_the_values_is_best():
    requests, truth = _requests()
    perfect = evaluate_blend(VALUES, truth, truth, requests, k=3)["value"]
    for seed in range(5):
        rng = np.random.default_rng(seed)
        other = {a: v * rng.uniform(0.2, 5) for a, v in VALUES.items()}
        assert evaluate_blend(other, truth, truth, requests, k=3)["value"] <= perfect + 1e-9


def test_tuning_fixes_a_miscalibrated_head_and_keeps_the_click_floor():
    requests, truth = _requests()
    rng = np.random.default_rng(1)
    probs = {a: p * rng.uniform(0.9, 1.1, p.size) for a, p in truth.items()}
    probs["hide"] = probs["hide"] / 10            # a hide head ten times too low
    hand = evaluate_blend(VALUES, probs, truth, requests, k=3)
    weights, trials = tune_blend(probs, truth, requests, k=3, trials=150, seed=0)
    tuned = evaluate_blend(weights, probs, truth, requests, k=3)
    assert tuned["value"] > hand["value"]
    assert weights["hide"] < VALUES["hide"]            # turned the hide up
    floor = 0.95 * evaluate_blend({"click": 1.0}, probs, truth, requests, k=3)["click"]
    assert tuned["click"] >= floor
    assert trials["meets_floor"].any() and len(trials) == 150


def test_an_impossible_floor_is_refused():
    requests, truth = _requests()
    with pytest.raises(ValueError, match="no trial"):
        tune_blend(truth, truth, requests, k=3, trials=5, min_click_share=1.0,
                   values={"click": 1.0, "hide": -1000.0})
