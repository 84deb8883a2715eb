"""The training loop on a synthetic dataset whose true click and conversion probabilities are known."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ranking.batches import subset
from ranking.history import EventHistory
from ranking.nn import DCNv2, EmbeddingMLP, LogisticRegression
from ranking.objective import entropy_weights, task_loss_sums, task_rates
from ranking.train import FitResult, evaluate_loss, fit, predict
from sequence_reference import random_log, reference_sequences

torch.set_num_threads(1)

N_USERS = 200
CARDINALITIES = {"user_id": N_USERS, "surface": 3}
DENSE_EFFECT = torch.tensor([0.8, -0.5, 0.3])


def make_data(n: int = 20_000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Clicks from a known logistic model; conversions exist only on clicks."""
    generator = torch.Generator().manual_seed(seed)
    user = torch.randint(0, N_USERS, (n,), generator=generator)
    surface = torch.randint(0, 3, (n,), generator=generator)
    dense = torch.randn(n, 3, generator=generator)
    user_offset = torch.randn(N_USERS, generator=generator)
    click_logit = -1.0 + user_offset[user] + torch.tensor([0.5, 0.0, -0.5])[surface] + dense @ DENSE_EFFECT
    p_click = torch.sigmoid(click_logit)
    p_conversion = torch.sigmoid(-0.5 + dense[:, 1] + 0.5 * user_offset[user])   # given a click
    click = torch.bernoulli(p_click, generator=generator)
    conversion = click * torch.bernoulli(p_conversion, generator=generator)
    return {"user_id": user, "surface": surface, "dense": dense,
            "label_click": click, "label_conversion": conversion,
            "oracle_click": p_click, "oracle_conversion": p_conversion}


def log_loss(p, y) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.fixture(scope="module")
def data():
    everything = make_data()
    return subset(everything, torch.arange(16_000)), subset(everything, torch.arange(16_000, 20_000))


def build(model_class, seed=0, **kwargs):
    torch.manual_seed(seed)
    return model_class(CARDINALITIES, n_dense=3, **kwargs)


def fit_lr(train, valid=None, **kwargs) -> FitResult:
    options = dict(lr=0.05, batch_size=512, epochs=4, progress=False)
    return fit(build(LogisticRegression), train, valid, **{**options, **kwargs})


def test_logistic_regression_learns_the_planted_model(data):
    train, valid = data
    result = fit_lr(train, valid)
    y = valid["label_click"]
    base_rate = log_loss(np.full(len(y), float(train["label_click"].mean())), y)
    oracle = log_loss(valid["oracle_click"], y)
    model = log_loss(predict(result.model, valid)["click"], y)
    assert model < base_rate - 0.8 * (base_rate - oracle)
    assert model < oracle + 0.02
    torch.testing.assert_close(result.model.dense_weights.weight[0].detach(), DENSE_EFFECT, atol=0.12, rtol=0)


def test_embedding_mlp_learns_click_and_conversion_on_clicks(data):
    train, valid = data
    tasks = ("click", "conversion")
    result = fit(build(EmbeddingMLP, tasks=tasks, hidden=(64, 32)), train, valid, tasks=tasks,
                 task_masks={"conversion": "label_click"}, lr=3e-3, batch_size=512, epochs=5, progress=False)
    predicted = predict(result.model, valid)
    clicked = valid["label_click"].numpy() == 1
    for task, rows in (("click", slice(None)), ("conversion", clicked)):
        y = valid[f"label_{task}"].numpy()[rows]
        base_rate = log_loss(np.full(len(y), y.mean()), y)
        oracle = log_loss(valid[f"oracle_{task}"].numpy()[rows], y)
        model = log_loss(predicted[task][rows], y)
        assert model < base_rate - 0.7 * (base_rate - oracle), task
        assert model < oracle + 0.03, task


def test_history_columns_and_best_epoch(data):
    train, valid = data
    result = fit(build(EmbeddingMLP, tasks=("click", "conversion"), hidden=(16,)), train, valid,
                 tasks=("click", "conversion"), task_masks={"conversion": "label_click"},
                 task_weights={"conversion": 0.5}, epochs=2, batch_size=2048, progress=False)
    history = result.history
    assert isinstance(history, pd.DataFrame)
    assert list(history.columns) == ["epoch", "train_loss", "train_loss_click", "train_loss_conversion",
                                     "valid_loss", "valid_loss_click", "valid_loss_conversion", "valid_monitor",
                                     "seconds"]
    assert history["epoch"].tolist() == [1, 2]
    expected = history["valid_loss_click"] + 0.5 * history["valid_loss_conversion"]
    np.testing.assert_allclose(history["valid_loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(history["valid_monitor"], history["valid_loss"], rtol=1e-6)   # the default
    assert result.best_epoch == int(history.loc[history["valid_loss"].idxmin(), "epoch"])
    without_valid = fit_lr(train, epochs=2, progress=True)
    assert "valid_loss" not in without_valid.history and without_valid.best_epoch == 2


def test_masked_task_loss_counts_only_rows_in_the_mask():
    batch = {"label_click": torch.tensor([1.0, 0.0, 1.0, 0.0]),
             "label_conversion": torch.tensor([1.0, 1.0, 0.0, 1.0])}
    logits = {"click": torch.zeros(4), "conversion": torch.tensor([2.0, -9.0, -1.0, 5.0])}
    sums = task_loss_sums(logits, batch, ("click", "conversion"), {"conversion": "label_click"})
    click_sum, click_rows = sums["click"]
    conversion_sum, conversion_rows = sums["conversion"]
    assert int(click_rows) == 4 and float(click_sum) == pytest.approx(4 * math.log(2))
    assert int(conversion_rows) == 2
    assert float(conversion_sum) == pytest.approx(math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0)))
    no_clicks = dict(batch, label_click=torch.zeros(4))
    conversion_sum, conversion_rows = task_loss_sums(logits, no_clicks, ("conversion",),
                                                     {"conversion": "label_click"})["conversion"]
    assert int(conversion_rows) == 0 and float(conversion_sum) == 0.0


def test_task_mask_makes_labels_outside_the_mask_irrelevant(data):
    train, _ = data
    not_clicked = train["label_click"] == 0
    coin = torch.full_like(train["label_conversion"], 0.5)
    noise = torch.bernoulli(coin, generator=torch.Generator().manual_seed(1))
    corrupted = dict(train, label_conversion=torch.where(not_clicked, noise, train["label_conversion"]))
    tasks = ("click", "conversion")

    def weights_after_fit(train_data, task_masks):
        model = fit(build(LogisticRegression, tasks=tasks), train_data, tasks=tasks, task_masks=task_masks,
                    epochs=1, batch_size=1024, lr=0.05, progress=False).model
        return model.state_dict()

    masked = {"conversion": "label_click"}
    clean, noisy = weights_after_fit(train, masked), weights_after_fit(corrupted, masked)
    assert all(torch.equal(clean[key], noisy[key]) for key in clean)
    clean, noisy = weights_after_fit(train, None), weights_after_fit(corrupted, None)
    assert not torch.equal(clean["intercept.logit"], noisy["intercept.logit"])


def test_zero_task_weight_leaves_that_head_untouched(data):
    train, _ = data
    tasks = ("click", "conversion")
    model = build(EmbeddingMLP, tasks=tasks, hidden=(16,))
    before = {task: head.weight.detach().clone() for task, head in model.heads.items()}
    fit(model, train, tasks=tasks, task_weights={"conversion": 0.0}, epochs=1, batch_size=2048,
        progress=False)
    assert torch.equal(model.heads["conversion"].weight, before["conversion"])
    assert not torch.equal(model.heads["click"].weight, before["click"])


def test_early_stopping_restores_the_best_epoch():
    """Random labels and one id per row: the model can only memorize, so valid loss soon rises."""
    generator = torch.Generator().manual_seed(0)

    def noise(n, first_id):
        return {"user_id": torch.arange(first_id, first_id + n),
                "surface": torch.randint(0, 3, (n,), generator=generator),
                "dense": torch.randn(n, 3, generator=generator),
                "label_click": torch.bernoulli(torch.full((n,), 0.5), generator=generator)}

    train, valid = noise(150, 0), noise(50, 150)
    model = build(EmbeddingMLP, hidden=(64,))
    result = fit(model, train, valid, epochs=30, batch_size=32, lr=0.01, patience=2, progress=False)
    history = result.history
    assert len(history) < 30                                        # stopped early
    assert len(history) == result.best_epoch + 2                    # after `patience` worse epochs
    best = history.loc[history["epoch"] == result.best_epoch, "valid_loss"].item()
    assert best == history["valid_loss"].min() < history["valid_loss"].iloc[-1]
    restored = evaluate_loss(result.model, valid)["loss"]
    assert restored == pytest.approx(best, rel=1e-6)


def test_same_seed_gives_identical_weights_and_other_seeds_differ(data):
    train, valid = data
    small = subset(train, torch.arange(4000))

    def trained(seed):
        model = build(EmbeddingMLP, seed=0, hidden=(16,), dropout=0.2)
        fit(model, small, valid, epochs=2, batch_size=256, seed=seed, progress=False)
        return model.state_dict()

    first, again, other = trained(0), trained(0), trained(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_trains_on_cpu(data, precision):
    train, valid = data
    result = fit(build(EmbeddingMLP, hidden=(32,)), train, valid, epochs=2, batch_size=1024, lr=3e-3,
                 precision=precision, device="cpu", progress=False)
    assert np.isfinite(result.history[["train_loss", "valid_loss"]].to_numpy()).all()
    assert result.history["valid_loss"].min() < log_loss(np.full(4000, 0.3), valid["label_click"])
    p = predict(result.model, valid, precision=precision)["click"]
    assert p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))


def test_predictions_are_probabilities_in_input_order(data):
    train, valid = data
    model = fit_lr(train, epochs=1).model
    p = predict(model, valid, batch_size=777)["click"]
    assert p.shape == (4000,) and p.dtype == np.float32
    assert np.all((p >= 0) & (p <= 1))
    order = torch.randperm(4000, generator=torch.Generator().manual_seed(0))
    shuffled = predict(model, subset(valid, order), batch_size=1000)["click"]
    np.testing.assert_allclose(shuffled, p[order.numpy()], rtol=1e-6)
    model.train()
    predict(model, valid)
    assert model.training                                           # mode is restored


@pytest.mark.parametrize("change, match", [
    (dict(tasks=("save",)), "label_save"),
    (dict(tasks=()), "tasks"),
    (dict(task_masks={"conversion": "label_click"}), "task_masks"),
    (dict(tasks=("click", "conversion"), task_masks={"conversion": "label_purchase"}), "label_purchase"),
    (dict(task_weights={"click": -1.0}), "task_weights"),
    (dict(precision="fp8"), "precision"),
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(patience=0), "patience"),
    (dict(monitor="save"), "monitor names"),
    (dict(monitor={}), "monitor must be"),
    (dict(monitor={"click": float("nan")}), "monitor\\['click'\\]"),
])
def test_bad_arguments_raise(data, change, match):
    train, _ = data
    with pytest.raises(ValueError, match=match):
        fit(build(LogisticRegression), train, **{"progress": False, **change})


def test_bad_data_raises(data):
    train, valid = data
    model = build(LogisticRegression)
    with pytest.raises(ValueError, match="train is empty"):
        fit(model, {}, progress=False)
    with pytest.raises(ValueError, match="train has no rows"):
        fit(model, subset(train, torch.arange(0)), progress=False)
    with pytest.raises(ValueError, match="disagree"):
        fit(model, dict(train, dense=train["dense"][:10]), progress=False)
    with pytest.raises(ValueError, match="valid has no 'label_click'"):
        unlabeled = {key: value for key, value in valid.items() if key != "label_click"}
        fit(model, train, unlabeled, progress=False)
    with pytest.raises(ValueError, match="no logits for task"):
        fit(model, train, tasks=("conversion",), progress=False)
    with pytest.raises(ValueError, match="precision"):
        predict(model, valid, precision="int8")
    with pytest.raises(ValueError, match="data is empty"):
        predict(model, {})
    with pytest.raises(ValueError, match="data is empty"):
        predict(model, {})


@pytest.mark.parametrize("corrupt, match", [
    (lambda d: dict(d, label_click=torch.where(torch.arange(len(d["label_click"])) == 7, math.nan,
                                               d["label_click"])), r"train\['label_click'\] holds NaN labels \(1 rows\)"),
    (lambda d: dict(d, label_click=d["label_click"] * 2), r"train\['label_click'\] holds labels outside \[0, 1\]"),
    (lambda d: dict(d, label_click=d["label_click"].long()), r"train\['label_click'\] must be a float tensor"),
    (lambda d: dict(d, dense=torch.where(d["dense"] > 2.5, math.inf, d["dense"])), r"train\['dense'\] holds NaN or inf"),
    (lambda d: dict(d, user_id=d["user_id"] + 1), r"train\['user_id'\] holds id 200, but its embedding table has 200 rows"),
    (lambda d: dict(d, surface=d["surface"] - 1), r"train\['surface'\] holds id -1"),
    (lambda d: dict(d, surface=d["surface"].float()), r"train\['surface'\] must hold integer ids"),
    (lambda d: {key: value for key, value in d.items() if key != "user_id"}, r"train has no 'user_id', a field"),
])
def test_data_that_would_train_silently_wrong_is_refused_naming_the_key(data, corrupt, match):
    train, _ = data
    for model_class in (LogisticRegression, EmbeddingMLP):
        with pytest.raises(ValueError, match=match):
            fit(build(model_class), corrupt(train), progress=False)


def test_prediction_refuses_an_unknown_id_naming_the_field(data):
    train, valid = data
    model = fit_lr(train, epochs=1).model
    with pytest.raises(ValueError, match=r"data\['user_id'\] holds id 200"):
        predict(model, dict(valid, user_id=valid["user_id"] + 1))


@pytest.mark.parametrize("model_class", [LogisticRegression, EmbeddingMLP, DCNv2])
def test_start_at_base_rate_makes_every_head_begin_as_the_base_rate(data, model_class):
    train, _ = data
    tasks = ("click", "conversion")
    masks = {"conversion": "label_click"}
    model = build(model_class, tasks=tasks)
    result = fit(model, train, tasks=tasks, task_masks=masks, start_at_base_rate=True, lr=0.0,
                 epochs=1, progress=False)                 # lr 0: the model stays where it started
    predicted = predict(result.model, train)
    clicked = train["label_click"].numpy() == 1
    click_rate = float(train["label_click"].mean())
    conversion_rate = float(train["label_conversion"][train["label_click"] == 1].mean())
    assert np.median(predicted["click"]) == pytest.approx(click_rate, rel=0.1)
    assert np.median(predicted["conversion"][clicked]) == pytest.approx(conversion_rate, rel=0.1)
    without = predict(build(model_class, tasks=tasks), train)
    assert abs(np.median(without["click"]) - 0.5) < 0.1      # the default starts near p = 0.5


def test_start_at_base_rate_needs_a_model_that_can_set_its_bias(data):
    train, _ = data

    class NoBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(3))

        def forward(self, batch):
            return {"click": batch["dense"] @ self.weight}

    with pytest.raises(TypeError, match="NoBias has no TaskHeads"):
        fit(NoBias(), train, start_at_base_rate=True, progress=False)


def test_early_stopping_can_watch_one_task():
    """Two heads on shared embeddings: the click is noise (weighted 5x), the conversion is learnable.

    Watching the weighted loss stops when the click starts to memorize its noise;
    watching the conversion keeps training while the conversion improves.
    """
    generator = torch.Generator().manual_seed(0)
    n = 4000
    user = torch.randint(0, N_USERS, (n,), generator=generator)
    dense = torch.randn(n, 3, generator=generator)
    rows = {"user_id": user, "surface": torch.zeros(n, dtype=torch.long), "dense": dense,
            "label_click": torch.bernoulli(torch.full((n,), 0.5), generator=generator),
            "label_conversion": torch.bernoulli(torch.sigmoid(2 * dense[:, 0]), generator=generator)}
    train, valid = subset(rows, torch.arange(3000)), subset(rows, torch.arange(3000, n))
    tasks = ("click", "conversion")
    options = dict(tasks=tasks, task_weights={"click": 5.0}, epochs=12, batch_size=64, lr=0.001, patience=2,
                   progress=False)
    on_sum = fit(build(EmbeddingMLP, tasks=tasks, hidden=(64,)), train, valid, **options)
    on_conversion = fit(build(EmbeddingMLP, tasks=tasks, hidden=(64,)), train, valid, monitor="conversion",
                        **options)
    history = on_conversion.history
    np.testing.assert_allclose(history["valid_monitor"], history["valid_loss_conversion"], rtol=1e-6)
    assert on_conversion.best_epoch == int(history.loc[history["valid_loss_conversion"].idxmin(), "epoch"])
    weighted = fit(build(EmbeddingMLP, tasks=tasks, hidden=(64,)), train, valid,
                   monitor={"click": 0.5, "conversion": 2.0}, **{**options, "epochs": 2})
    expected = 0.5 * weighted.history["valid_loss_click"] + 2.0 * weighted.history["valid_loss_conversion"]
    np.testing.assert_allclose(weighted.history["valid_monitor"], expected, rtol=1e-6)
    assert on_conversion.best_epoch > on_sum.best_epoch


def test_task_rates_count_a_masked_task_on_its_rows_only(data):
    train, _ = data
    rates = task_rates(train, ("click", "conversion"), {"conversion": "label_click"})
    clicked = train["label_click"] == 1
    assert rates["click"] == pytest.approx(float(train["label_click"].mean()))
    assert rates["conversion"] == pytest.approx(float(train["label_conversion"][clicked].mean()))
    with pytest.raises(ValueError, match="'conversion' has no rows"):
        task_rates(dict(train, label_click=torch.zeros_like(train["label_click"])), ("conversion",),
                   {"conversion": "label_click"})


def test_entropy_weights_make_each_weighted_loss_a_normalized_entropy():
    labels = {"label_click": torch.tensor([1.0] * 20 + [0.0] * 980),      # rate 2%
              "label_hide": torch.tensor([1.0] * 3 + [0.0] * 997)}        # rate 0.3%
    weights = entropy_weights(labels, ("click", "hide"))
    assert weights["click"] == 1.0
    entropy = lambda r: -(r * math.log(r) + (1 - r) * math.log(1 - r))
    assert weights["hide"] == pytest.approx(entropy(0.02) / entropy(0.003))
    # the base-rate predictor's weighted loss is the same for both tasks: H(click) each
    for task, rate in (("click", 0.02), ("hide", 0.003)):
        assert weights[task] * entropy(rate) == pytest.approx(entropy(0.02))
    with pytest.raises(ValueError, match="entropy is 0"):
        entropy_weights({"label_click": torch.zeros(10)}, ("click",))


# ------------------------------------------------------------ gathered sequences
class LastActionModel(torch.nn.Module):
    """A sequence model in miniature: the click logit is learned per last action."""

    def __init__(self):
        super().__init__()
        self.logit = torch.nn.Embedding(4, 1)   # PADDING and the three actions
        self.keys_seen: list[set[str]] = []

    def forward(self, batch):
        self.keys_seen.append(set(batch))
        return {"click": self.logit(batch["seq_action"][:, 0]).squeeze(1)}   # (B,)


CLICK_RATE_BY_LAST_ACTION = torch.tensor([0.05, 0.1, 0.3, 0.6])   # none, closeup, click, save


@pytest.fixture(scope="module")
def sequence_data():
    """Clicks that depend on the user's last event: data holds only history indices."""
    events, item_category, impressions = random_log(n_users=300, n_items=50, n_events=20_000,
                                                    n_impressions=12_000, seed=3)
    history = EventHistory(events, item_category, length=4)
    data = history.locate(impressions["user_id"], impressions["timestamp"])
    reference = reference_sequences(events, item_category, impressions, 4)
    p_click = CLICK_RATE_BY_LAST_ACTION[reference["seq_action"][:, 0]]
    data["label_click"] = torch.bernoulli(p_click, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(len(impressions))
    return subset(data, rows < 10_000), subset(data, rows >= 10_000), history, reference


def test_fit_gathers_sequences_for_training_and_validation(sequence_data):
    train, valid, history, _ = sequence_data
    model = LastActionModel()
    result = fit(model, train, valid, history=history, lr=0.1, batch_size=500, epochs=3,
                 device="cpu", progress=False)
    assert all({"seq_action", "seq_item_id", "seq_category"} <= keys for keys in model.keys_seen)
    assert len(model.keys_seen) == 3 * (20 + 1)   # 20 training batches and 1 valid batch an epoch
    learned = torch.sigmoid(result.model.logit.weight.detach().squeeze(1))
    torch.testing.assert_close(learned, CLICK_RATE_BY_LAST_ACTION, atol=0.05, rtol=0)


def test_predict_and_evaluate_loss_with_history_equal_the_materialized_sequences(sequence_data):
    _, valid, history, reference = sequence_data
    model = LastActionModel()
    materialized = {**valid, **{key: tensor[10_000:] for key, tensor in reference.items()}}
    gathered = predict(model, valid, history=history, batch_size=300)["click"]
    np.testing.assert_array_equal(gathered, predict(model, materialized, batch_size=300)["click"])
    assert (evaluate_loss(model, valid, history=history, batch_size=300)
            == evaluate_loss(model, materialized, batch_size=300))


def test_fit_refuses_rows_without_history_indices(sequence_data):
    train, _, history, _ = sequence_data
    rows = {"label_click": train["label_click"]}
    with pytest.raises(ValueError, match="train is missing"):
        fit(LastActionModel(), rows, history=history, epochs=1, progress=False)
    with pytest.raises(ValueError, match="another"):
        fit(LastActionModel(), {**train, "history_start": train["history_start"] - 10**6},
            history=history, epochs=1, progress=False)
