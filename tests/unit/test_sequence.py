"""User-sequence models: shapes, padding that changes nothing, empty histories, and learning a planted signal."""

import math

import numpy as np
import pytest
import torch

from ranking.metrics import auc
from ranking.nn import EmbeddingMLP
from ranking.nn.sequence import (EventEmbedding, IntervalSumPooling, LongShort, SequenceRanker, SumPooling,
                                 TargetAttention, TimeAwareTransformer, TimeDeltaEmbedding)
from ranking.nn.sequence.transformer import SelfAttention
from ranking.train import fit, predict

torch.set_num_threads(1)
N_ITEMS, N_CATEGORIES, N_ACTIONS, DIM, L = 30, 5, 3, 8, 6
CARDINALITIES = {"item_id": N_ITEMS, "category": N_CATEGORIES, "surface": 3}


def pretrained(seed: int = 0) -> torch.Tensor:
    return torch.randn(N_ITEMS, 12, generator=torch.Generator().manual_seed(seed))


def make_batch(b: int = 5, lengths=(6, 3, 1, 0, 4), seed: int = 0) -> dict[str, torch.Tensor]:
    """Most recent first; row i has lengths[i] real events, then padding (ids 0)."""
    g = torch.Generator().manual_seed(seed)
    valid = torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]                 # (B, L)
    item = torch.randint(0, N_ITEMS, (b, L), generator=g)
    category = torch.randint(0, N_CATEGORIES, (b, L), generator=g)
    action = torch.randint(0, N_ACTIONS, (b, L), generator=g)
    hours = torch.sort(torch.rand(b, L, generator=g) * 500, dim=1).values
    return {
        "item_id": torch.randint(0, N_ITEMS, (b,), generator=g),
        "category": torch.randint(0, N_CATEGORIES, (b,), generator=g),
        "surface": torch.randint(0, 3, (b,), generator=g),
        "dense": torch.randn(b, 2, generator=g),
        "seq_item_id": torch.where(valid, item + 1, 0),
        "seq_category": torch.where(valid, category + 1, 0),
        "seq_action": torch.where(valid, action + 1, 0),
        "seq_delta_hours": torch.where(valid, hours, 0.0),
        "seq_length": valid.sum(1),
    }


def scribble_on_padding(batch: dict, seed: int = 1) -> dict:
    """The same batch with random action, category and age in every padding slot."""
    g = torch.Generator().manual_seed(seed)
    padding = batch["seq_item_id"] == 0
    changed = dict(batch)
    for key, high in (("seq_action", N_ACTIONS + 1), ("seq_category", N_CATEGORIES + 1)):
        changed[key] = torch.where(padding, torch.randint(1, high, padding.shape, generator=g), batch[key])
    changed["seq_delta_hours"] = torch.where(padding, torch.rand(padding.shape, generator=g) * 900,
                                             batch["seq_delta_hours"])
    return changed


def events(connection="sum", interactions=False) -> EventEmbedding:
    torch.manual_seed(0)
    return EventEmbedding(N_ITEMS, N_CATEGORIES, N_ACTIONS, pretrained(), dim=DIM, connection=connection,
                          interactions=interactions)


SUMMARIZERS = {
    "sum": lambda: SumPooling(DIM),
    "interval": lambda: IntervalSumPooling(DIM),
    "din": lambda: TargetAttention(DIM),
    "transformer": lambda: TimeAwareTransformer(DIM, layers=2, heads=2),
    "transformer, order": lambda: TimeAwareTransformer(DIM, positions="order"),
    "transformer, fusion": lambda: TimeAwareTransformer(DIM, early_fusion=True),
    "long-short": lambda: LongShort(TimeAwareTransformer(DIM), TargetAttention(DIM), short_length=2),
}


def ranker(name, connection="sum", interactions=False) -> SequenceRanker:
    torch.manual_seed(0)
    return SequenceRanker(CARDINALITIES, 2, events(connection, interactions), SUMMARIZERS[name](),
                          embedding_dim=4, hidden=(16,))


@pytest.mark.parametrize("name", SUMMARIZERS)
@pytest.mark.parametrize("connection, interactions", [("sum", False), ("concat", True)])
def test_padding_changes_nothing_and_empty_histories_give_no_nan(name, connection, interactions):
    model = ranker(name, connection, interactions)
    batch = make_batch()
    out = model(batch)["click"]
    assert out.shape == (5,) and torch.isfinite(out).all()
    torch.testing.assert_close(model(scribble_on_padding(batch))["click"], out)
    model.eval()                              # no dropout, no batch statistics: eval is train
    torch.testing.assert_close(model(batch)["click"], out)


@pytest.mark.parametrize("name", SUMMARIZERS)
def test_bf16_autocast_keeps_empty_histories_finite(name):
    model = ranker(name)
    batch = make_batch(lengths=(0, 0, 2, 0, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)["click"]
    assert torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), model(batch)["click"], atol=0.05, rtol=0.05)


@pytest.mark.parametrize("name", ["sum", "interval", "din"])
def test_pooled_summaries_of_an_empty_history_are_zero(name):
    embedding, summarizer = events(), SUMMARIZERS[name]()
    batch = make_batch(lengths=(0, 3, 0, 0, 0))
    vectors, mask = embedding(batch)
    summary = summarizer(vectors, mask, embedding.candidate(batch), batch["seq_delta_hours"])
    assert torch.count_nonzero(summary[[0, 2, 3, 4]]) == 0 and torch.count_nonzero(summary[1]) > 0


def test_self_attention_puts_exactly_zero_weight_on_padding():
    torch.manual_seed(0)
    attention = SelfAttention(DIM, heads=2)
    x = torch.randn(3, 4, DIM)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False], [True] * 4])
    noisy = x.clone()
    noisy[~mask] = 1e4 * torch.randn(int((~mask).sum()), DIM)            # huge values in padding slots
    for dtype in (torch.float32, torch.float16):
        out, out_noisy = (attention.to(dtype)(t.to(dtype), mask) for t in (x, noisy))
        torch.testing.assert_close(out[mask], out_noisy[mask])           # real tokens never see padding
        assert torch.isfinite(out).all()
    all_padding = torch.zeros(1, 4, dtype=torch.bool)
    assert torch.isfinite(attention.float()(x[:1], all_padding)).all()   # a row of padding: no NaN


def test_interval_sum_pooling_sums_each_interval_separately():
    pooling = IntervalSumPooling(2, bounds_hours=(1.0, 24.0))
    vectors = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]]])
    mask = torch.tensor([[True, True, True, False]])
    hours = torch.tensor([[0.5, 5.0, 30.0, 0.2]])                      # the last slot is padding
    out = pooling(vectors, mask, torch.zeros(1, 2), hours)
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0, 0.0, 2.0, 3.0, 0.0]]))


def test_long_short_reads_only_the_latest_events_for_the_short_part():
    long_short = LongShort(SumPooling(2), SumPooling(2), short_length=2)
    vectors = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    out = long_short(vectors, torch.ones(1, 3, dtype=torch.bool), torch.zeros(1, 2), torch.zeros(1, 3))
    torch.testing.assert_close(out, torch.tensor([[6.0, 6.0, 1.0, 1.0]]))


def test_time_delta_buckets_are_log2():
    buckets = TimeDeltaEmbedding(4, max_hours=100).buckets(torch.tensor([0.0, 0.9, 1.0, 3.0, 7.0, 1e6]))
    assert buckets.tolist() == [0, 0, 1, 2, 3, int(math.log2(101))]


def test_the_candidate_shares_the_event_space_and_matches_itself():
    embedding = events(interactions=True)
    batch = make_batch()
    same = dict(batch)
    same["seq_item_id"] = (batch["item_id"] + 1)[:, None].expand(-1, L).clone()
    same["seq_category"] = (batch["category"] + 1)[:, None].expand(-1, L).clone()
    same["seq_action"] = torch.full((5, L), embedding.candidate_action)
    vectors, _ = embedding(same)
    torch.testing.assert_close(vectors[:, 0], embedding.candidate(batch))


@pytest.mark.parametrize("build, match", [
    (lambda: EventEmbedding(N_ITEMS, N_CATEGORIES, N_ACTIONS, pretrained(), connection="mean"), "connection"),
    (lambda: EventEmbedding(N_ITEMS + 1, N_CATEGORIES, N_ACTIONS, pretrained()), "one row per item"),
    (lambda: TimeAwareTransformer(8, heads=3), "divisible"),
    (lambda: TimeAwareTransformer(8, positions="sine"), "positions"),
    (lambda: TimeAwareTransformer(8, layers=0), "layers"),
    (lambda: IntervalSumPooling(8, bounds_hours=(24.0, 1.0)), "increasing"),
    (lambda: LongShort(SumPooling(8), SumPooling(8), short_length=0), "short_length"),
])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def planted_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Clicks that depend only on whether the candidate's category is among the user's recent events."""
    batch = make_batch(b=n, lengths=tuple(np.random.default_rng(seed).integers(0, L + 1, n)), seed=seed)
    seen = (batch["seq_category"] == (batch["category"] + 1)[:, None]).any(dim=1)
    p_click = torch.where(seen, 0.6, 0.1)
    batch["label_click"] = torch.bernoulli(p_click, generator=torch.Generator().manual_seed(seed))
    batch["oracle_click"] = p_click
    return batch


@pytest.mark.parametrize("name", ["sum", "din", "transformer, fusion"])
def test_a_sequence_model_learns_what_only_the_sequence_shows(name):
    train, test = planted_data(6000, seed=0), planted_data(2000, seed=1)
    options = dict(epochs=12, batch_size=256, lr=3e-3, progress=False)
    model = fit(ranker(name), train, **options).model
    baseline = fit(EmbeddingMLP(CARDINALITIES, 2, embedding_dim=4, hidden=(16,)), train, **options).model
    y = test["label_click"]                  # the oracle's AUC is 0.78
    assert auc(y, predict(model, test)["click"]) > 0.62       # measured 0.65 to 0.66
    assert auc(y, predict(baseline, test)["click"]) < 0.56    # measured 0.51


# ---------------------------------------------------- parts and the sequence models
def test_event_parts_choose_what_an_event_is_made_of():
    batch = make_batch()
    torch.manual_seed(0)
    ids_only = EventEmbedding(N_ITEMS, N_CATEGORIES, N_ACTIONS, pretrained(), dim=DIM, parts=("item",))
    assert not hasattr(ids_only, "pretrained_projection")
    vectors, mask = ids_only(batch)
    expected = ids_only.item(batch["seq_item_id"]) * mask.unsqueeze(-1)
    torch.testing.assert_close(vectors, expected)
    full = events()
    assert full.parts == ("item", "category", "action", "pretrained")
    # the order given does not matter, only the set
    torch.manual_seed(0)
    reordered = EventEmbedding(N_ITEMS, N_CATEGORIES, N_ACTIONS, pretrained(), dim=DIM,
                               parts=("pretrained", "action", "category", "item"))
    torch.testing.assert_close(reordered(batch)[0], full(batch)[0])


@pytest.mark.parametrize("parts", [(), ("item", "price")])
def test_event_parts_are_checked(parts):
    with pytest.raises(ValueError, match="parts"):
        EventEmbedding(N_ITEMS, N_CATEGORIES, N_ACTIONS, pretrained(), parts=parts)


@pytest.fixture(scope="module")
def smoke_encoder():
    from ranking.features import FeatureEncoder, FeatureSpec
    from ranking.simulate import AdLogConfig, load_or_simulate

    logs = load_or_simulate(AdLogConfig.preset("smoke"), seed=0)
    frame = logs.impressions.head(2_000)
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=16, tasks=("click",))).fit(frame)
    return logs, encoder, encoder.transform(frame.head(64))


@pytest.mark.parametrize("name", ["sum", "interval", "transformer", "transformer + fusion", "din",
                                  "long-short"])
def test_every_rung_of_the_ladder_scores_the_log(smoke_encoder, name):
    from ranking.sequence_models import LADDER, build_sequence_model

    assert name in LADDER
    logs, encoder, data = smoke_encoder
    batch = {**data, **encoder.history.gather(data)}
    model = build_sequence_model(name, encoder, logs).eval()
    logits = model(batch)["click"]
    assert logits.shape == (64,) and torch.isfinite(logits).all()


def test_sequence_models_refuse_unknown_names_and_encoders_without_a_sequence(smoke_encoder):
    from ranking.features import FeatureEncoder, FeatureSpec
    from ranking.sequence_models import build_sequence_model, build_summarizer

    logs, encoder, _ = smoke_encoder
    with pytest.raises(ValueError, match="unknown sequence model"):
        build_summarizer("lstm", 8)
    no_sequence = FeatureEncoder(logs, FeatureSpec(sequence_length=0))
    with pytest.raises(ValueError, match="no sequence"):
        build_sequence_model("sum", no_sequence, logs)
