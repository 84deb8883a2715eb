"""Continuous training: a model trained day after day in time order, each day served by
the model trained on the days before it, on three smoke-scale days of the simulated log."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ranking.continuous import train_in_time_order
from ranking.features import FeatureEncoder, FeatureSpec
from ranking.metrics import auc, logloss
from ranking.nn import DCNv2, ResilientBatchNorm1d
from ranking.simulate import AdLogConfig, simulate
from ranking.train import predict

torch.set_num_threads(1)

N_DAYS = 3
OPTIONS = dict(batch_size=512, lr=3e-3, progress=False)


@pytest.fixture(scope="module")
def smoke():
    """(encoder, days): the smoke log's first three days, one TensorDict each, rows in time order."""
    logs = simulate(AdLogConfig.preset("smoke"), seed=0)
    impressions = logs.impressions.sort_values("timestamp", kind="stable")
    day = impressions["timestamp"] // 86400
    frames = [impressions[day == index] for index in range(N_DAYS)]
    encoder = FeatureEncoder(logs, FeatureSpec(sequence_length=0, tasks=("click",))).fit(frames[0])
    return encoder, [encoder.transform(frame) for frame in frames]


def build(encoder, seed: int = 0, normalization: str = "batch") -> DCNv2:
    torch.manual_seed(seed)
    return DCNv2(encoder.cardinalities, encoder.n_dense, embedding_dim=4, cross_layers=1,
                 hidden=(16,), dense_normalization=normalization)


def entropy(rate: float) -> float:
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def test_one_row_per_day_and_served_metrics_from_the_second_day(smoke):
    encoder, days = smoke
    model = build(encoder)
    start = copy.deepcopy(model.state_dict())
    result = train_in_time_order(model, days, **OPTIONS)
    assert isinstance(result, pd.DataFrame) and len(result) == N_DAYS
    assert result["day"].tolist() == [0, 1, 2]
    assert result["rows"].tolist() == [len(day["label_click"]) for day in days]
    assert all(rows > 2000 for rows in result["rows"])
    served = ["logloss", "ne", "oracle_ne", "auc", "non_finite"]
    assert set(served + ["train_loss"]) <= set(result.columns)
    assert "largest_output" not in result.columns and "running_var" not in result.columns
    assert result.loc[0, served].isna().all()                     # the first day is only trained on
    assert np.isfinite(result.loc[1:, served].to_numpy(dtype=float)).all()
    assert (result.loc[1:, "non_finite"] == 0).all()
    assert np.isfinite(result["train_loss"]).all() and (result["train_loss"] > 0).all()
    for index in (1, 2):
        row, labels = result.loc[index], days[index]["label_click"].numpy()
        rate = labels.mean()
        assert row["ne"] == pytest.approx(row["logloss"] / entropy(rate), rel=1e-6)
        oracle = logloss(labels, days[index]["oracle_click"].numpy()) / entropy(rate)
        assert row["oracle_ne"] == pytest.approx(oracle, rel=1e-6)
        assert 0 <= row["auc"] <= 1 and row["ne"] > 0
    # the heads start at p = 0.5 on a ~2% click rate: every day of training brings the served NE down
    assert result.loc[2, "ne"] < result.loc[1, "ne"]
    assert result["train_loss"].is_monotonic_decreasing
    trained = model.state_dict()
    assert any(not torch.equal(trained[key], start[key]) for key in start if key.endswith("weight"))


def test_each_day_is_served_by_the_model_trained_on_the_days_before_it(smoke):
    """Day 2's served log loss is the log loss of a model trained on days 0 and 1 only."""
    encoder, days = smoke
    full = train_in_time_order(build(encoder), days, **OPTIONS)
    two_days = build(encoder)
    first = train_in_time_order(two_days, days[:2], **OPTIONS)
    pd.testing.assert_frame_equal(full.iloc[:2], first, check_exact=False, rtol=1e-6)
    probabilities = predict(two_days, days[2], device="cpu")["click"]
    labels = days[2]["label_click"].numpy()
    assert full.loc[2, "logloss"] == pytest.approx(logloss(labels, probabilities), rel=1e-6)
    assert full.loc[2, "auc"] == pytest.approx(auc(labels, probabilities), rel=1e-6)
    # the train loss is the mean over day 0's rows, one pass in order: replay it by hand
    losses = []
    _trained_on_first_day(days, lambda: build(encoder), losses)
    mean = np.average([loss for loss, _ in losses], weights=[rows for _, rows in losses])
    assert full.loc[0, "train_loss"] == pytest.approx(mean, rel=1e-5)


def test_day_labels_name_the_rows(smoke):
    encoder, days = smoke
    result = train_in_time_order(build(encoder), days[:2], day_labels=[20, 21], **OPTIONS)
    assert result["day"].tolist() == [20, 21]


def test_watch_records_the_largest_output_and_the_running_variance(smoke):
    encoder, days = smoke
    model = build(encoder, normalization="resilient")
    norm = model.input.dense_input.norm
    assert isinstance(norm, ResilientBatchNorm1d)
    column = 2
    seen = []
    hook = norm.register_forward_hook(lambda module, args, output: seen.append(
        (module.training, float(module.running_var[column]))))
    try:
        result = train_in_time_order(model, days, watch=norm, watch_column=column, **OPTIONS)
    finally:
        hook.remove()
    assert math.isnan(result.loc[0, "largest_output"])
    assert np.isfinite(result.loc[1:, "largest_output"]).all() and (result.loc[1:, "largest_output"] > 0).all()
    # each day's running_var is the layer's after that day's last training batch
    batches_per_day = [math.ceil(len(day["label_click"]) / OPTIONS["batch_size"]) for day in days]
    training_calls = [var for training, var in seen if training]
    assert len(training_calls) == sum(batches_per_day) == int(norm.num_batches_tracked)
    last_batch = np.cumsum(batches_per_day) - 1
    assert result["running_var"].tolist() == [training_calls[index] for index in last_batch]
    assert result.loc[N_DAYS - 1, "running_var"] == float(norm.running_var[column])
    assert result["running_var"].nunique() == N_DAYS                 # it moved day by day


def test_watch_largest_output_is_the_served_days(smoke):
    """Day 1's largest_output: the largest |normalized dense value| when the day-0 model serves day 1."""
    encoder, days = smoke
    model = build(encoder)
    result = train_in_time_order(model, days[:2], watch=model.input.dense_input.norm, **OPTIONS)
    assert "running_var" not in result.columns
    served_by = _trained_on_first_day(days, lambda: build(encoder))
    served_by.eval()
    with torch.no_grad():
        normalized = served_by.input.dense_input.norm(days[1]["dense"])
    assert result.loc[1, "largest_output"] == pytest.approx(float(normalized.abs().max()), rel=1e-6)
    # in eval mode: batch statistics would give a different largest value
    with torch.no_grad():
        batch_normalized = nn.functional.batch_norm(days[1]["dense"], None, None, training=True)
    assert float(batch_normalized.abs().max()) != pytest.approx(result.loc[1, "largest_output"], rel=1e-3)


def test_a_nan_prediction_counts_as_non_finite_and_is_served_at_the_days_rate(smoke):
    encoder, days = smoke

    class NaNWhenServing(nn.Module):
        """A DCN V2 whose serving logit is NaN on rows with a large first dense feature."""

        def __init__(self):
            super().__init__()
            self.inner = build(encoder)

        def forward(self, batch):
            logits = self.inner(batch)
            if not self.training:
                broken = batch["dense"][:, 0] > 0.5
                logits = {task: logit.masked_fill(broken, float("nan")) for task, logit in logits.items()}
            return logits

    model = NaNWhenServing()
    result = train_in_time_order(model, days[:2], **OPTIONS)
    broken = (days[1]["dense"][:, 0] > 0.5).numpy()
    assert 0.05 < broken.mean() < 0.95
    assert result.loc[1, "non_finite"] == pytest.approx(broken.mean())
    assert np.isfinite(result.loc[1, ["logloss", "ne", "auc"]].to_numpy(dtype=float)).all()
    labels = days[1]["label_click"].numpy()
    # the log loss is the model's own predictions', with the broken rows at the day's click rate
    served = predict(_trained_on_first_day(days, NaNWhenServing), days[1], device="cpu")["click"]
    assert (~np.isfinite(served)).mean() == pytest.approx(broken.mean())
    served = np.where(np.isfinite(served), served, labels.mean())
    assert result.loc[1, "logloss"] == pytest.approx(logloss(labels, served), rel=1e-6)
    assert result.loc[1, "auc"] == pytest.approx(auc(labels, served), rel=1e-6)
    # training never saw a NaN: the weights stayed finite
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _trained_on_first_day(days, factory, losses=None):
    """The model that serves day 1: ``factory()`` trained on day 0 alone, one pass in order with Adam.

    ``losses``, if given, receives (batch loss, batch rows) for each step."""
    model = factory()
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=OPTIONS["lr"])
    model.train()
    for start in range(0, len(days[0]["label_click"]), OPTIONS["batch_size"]):
        batch = {key: value[start:start + OPTIONS["batch_size"]] for key, value in days[0].items()}
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch)["click"], batch["label_click"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if losses is not None:
            losses.append((float(loss.detach()), len(batch["label_click"])))
    return model


def test_training_stays_on_the_models_device_when_cuda_is_available(smoke, monkeypatch):
    encoder, days = smoke
    model = build(encoder)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)     # as on a GPU machine
    result = train_in_time_order(model, days[:2], **OPTIONS)
    assert len(result) == 2
    assert all(p.device.type == "cpu" for p in model.parameters())


# ------------------------------------------------------------------ argument checks


def test_errors(smoke):
    encoder, days = smoke
    model = build(encoder)
    with pytest.raises(ValueError, match="at least 2 days"):
        train_in_time_order(model, days[:1], **OPTIONS)
    with pytest.raises(ValueError, match="at least 2 days"):
        train_in_time_order(model, [], **OPTIONS)
    with pytest.raises(ValueError, match="day_labels"):
        train_in_time_order(model, days[:2], day_labels=[1, 2, 3], **OPTIONS)
    with pytest.raises(ValueError, match="running_var"):
        train_in_time_order(model, days[:2], watch=model.mlp, watch_column=0, **OPTIONS)
    with pytest.raises(ValueError, match="running_var"):
        train_in_time_order(model, days[:2], watch_column=0, **OPTIONS)
    no_label = {key: value for key, value in days[1].items() if key != "label_click"}
    with pytest.raises(ValueError, match="label_click"):
        train_in_time_order(model, [days[0], no_label], **OPTIONS)
    with pytest.raises(ValueError, match="label_save"):
        train_in_time_order(model, days[:2], task="save", **OPTIONS)
    ragged = dict(days[1], dense=days[1]["dense"][:10])
    with pytest.raises(ValueError, match="rows"):
        train_in_time_order(model, [days[0], ragged], **OPTIONS)


def test_largest_output_reports_nan_as_infinite(smoke):
    from ranking.continuous import largest_output

    encoder, days = smoke
    model = build(encoder)
    layer = torch.nn.Identity()
    handle = model.register_forward_hook(lambda module, args, output: layer(torch.tensor([1.0, float("nan")])))
    try:
        assert largest_output(layer, model, days[0], 4096) == float("inf")
    finally:
        handle.remove()
