"""The parts of the training loop: one step, one epoch, evaluation, early stopping, fit."""

import math

import numpy as np
import pytest
import torch

from ranking.batches import Batches, subset
from ranking.nn import LogisticRegression
from ranking.objective import Objective
from ranking.train import EarlyStopping, evaluate_loss, fit, train_epoch, train_step
from test_train import CARDINALITIES, make_data

torch.set_num_threads(1)

TASKS = ("click", "conversion")
MASKS = {"conversion": "label_click"}
CPU = torch.device("cpu")


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def log_loss(z, y) -> np.ndarray:
    p = sigmoid(np.asarray(z, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def lr_model(seed=0, tasks=TASKS, scale=0.5) -> LogisticRegression:
    """Logistic regression with every weight random (not ~0), so gradients differ per row."""
    torch.manual_seed(seed)
    model = LogisticRegression(CARDINALITIES, n_dense=3, tasks=tasks)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, scale)
    return model


def state(model):
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def changed(model, saved) -> list[str]:
    """The names of the model's tensors that differ from ``saved``."""
    now = model.state_dict()
    return [key for key, value in saved.items() if not torch.equal(now[key], value)]


def same_state(model, saved) -> bool:
    return not changed(model, saved)


def numpy_logits(model, data) -> dict[str, np.ndarray]:
    """logit = intercept + each field's weight of its id + dense . w, by hand in float64."""
    z = model.intercept.logit.detach().double().numpy()[None, :]
    for field, table in model.id_weights.tables.items():
        z = z + table.weight.detach().double().numpy()[data[field].numpy()]
    z = z + data["dense"].double().numpy() @ model.dense_weights.weight.detach().double().numpy().T
    return {task: z[:, i] for i, task in enumerate(model.tasks)}


# ---------------------------------------------------------------- train_step
def test_one_sgd_step_equals_the_hand_computed_gradient_step():
    """d loss / d logit is weight * (p - target) / rows counted, for labels and teachers alike;
    each parameter moves by -lr times the sum of that over the rows it touches."""
    data = subset(make_data(n=12, seed=3), torch.arange(12))
    data["label_click"] = torch.tensor([1.0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0])
    data["label_conversion"] = data["label_click"] * torch.tensor([1.0, 0, 0, 0, 1, 1] * 2)
    data["teacher_click"] = torch.linspace(0.05, 0.95, 12)
    model = lr_model()
    before = state(model)
    objective = Objective(TASKS, MASKS, task_weights={"click": 0.7, "conversion": 2.0},
                          distillation={"click": 0.3})
    lr = 0.1
    z = numpy_logits(model, data)
    y = {task: data[f"label_{task}"].double().numpy() for task in TASKS}
    clicked = y["click"] == 1
    g_click = (0.7 * (sigmoid(z["click"]) - y["click"]) / 12
               + 0.3 * (sigmoid(z["click"]) - data["teacher_click"].double().numpy()) / 12)
    g_conversion = 2.0 * clicked * (sigmoid(z["conversion"]) - y["conversion"]) / clicked.sum()
    g = np.stack([g_click, g_conversion], axis=1)                          # (N, T)

    sums = train_step(model, data, objective, torch.optim.SGD(model.parameters(), lr=lr))

    expected = {"intercept.logit": before["intercept.logit"].double().numpy() - lr * g.sum(0)}
    dense = data["dense"].double().numpy()
    expected["dense_weights.weight"] = (before["dense_weights.weight"].double().numpy()
                                        - lr * g.T @ dense)
    for field in CARDINALITIES:
        key = f"id_weights.tables.{field}.weight"
        grad = np.zeros_like(before[key].double().numpy())
        np.add.at(grad, data[field].numpy(), g)
        expected[key] = before[key].double().numpy() - lr * grad
    after = model.state_dict()
    assert set(after) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key].double().numpy(), value, atol=1e-6, err_msg=key)
    # the sums are those of the weights before the step
    assert sums["click"][0].item() == pytest.approx(log_loss(z["click"], y["click"]).sum(),
                                                    rel=1e-5)
    assert int(sums["conversion"][1]) == clicked.sum()


def cpu_fp16_autocast_works() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.nn.Linear(3, 1)(torch.randn(2, 3)).sum()
        torch.amp.GradScaler("cpu")
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


class InfiniteOn(Objective):
    """The objective, but the loss is inf on any batch holding row ``row`` of the data."""

    def __init__(self, row: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row = row

    def __call__(self, logits, batch):
        loss, sums = super().__call__(logits, batch)
        if (batch["row"] == self.row).any():
            loss = loss * math.inf
        return loss, sums


def with_row_numbers(data):
    return {**data, "row": torch.arange(len(data["label_click"]))}


@pytest.mark.skipif(not cpu_fp16_autocast_works(), reason="no fp16 autocast on this CPU")
def test_an_fp16_step_whose_loss_is_inf_is_skipped_and_the_weights_kept():
    data = with_row_numbers(make_data(n=16, seed=1))
    model = lr_model()
    before = state(model)
    scaler = torch.amp.GradScaler("cpu")
    scale = scaler.get_scale()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(model, data, InfiniteOn(0, TASKS, MASKS), optimizer, scaler, precision="fp16")
    assert same_state(model, before)
    assert scaler.get_scale() < scale
    train_step(model, data, InfiniteOn(-1, TASKS, MASKS), optimizer, scaler, precision="fp16")
    assert not same_state(model, before)       # a finite step does move the weights


@pytest.mark.skipif(not cpu_fp16_autocast_works(), reason="no fp16 autocast on this CPU")
def test_train_epoch_counts_the_steps_the_fp16_scaler_skipped():
    data = with_row_numbers(make_data(n=10, seed=1))
    model = lr_model()
    scaler = torch.amp.GradScaler("cpu")
    row = train_epoch(model, Batches(data, 4, shuffle=False), InfiniteOn(5, TASKS, MASKS),
                      torch.optim.SGD(model.parameters(), lr=0.01), scaler, "fp16")
    assert row["skipped_steps"] == 1
    assert row["loss_scale"] == 65536.0 / 2


# --------------------------------------------------------------- train_epoch
def test_train_epoch_loss_is_the_mean_over_all_rows_not_the_mean_of_batch_means():
    """10 rows in batches of 4, 4 and 2, the last two rows badly predicted. lr=0 keeps the
    model fixed, so the epoch's losses are those of one model over all rows."""
    data = make_data(n=10, seed=2)
    data["label_click"] = torch.tensor([1.0, 0, 1, 0, 0, 1, 0, 0, 1, 1])
    data["label_conversion"] = torch.tensor([1.0, 0, 0, 0, 0, 1, 0, 0, 1, 0])
    model = lr_model()
    with torch.no_grad():
        model.intercept.logit.fill_(-1.0)
    objective = Objective(TASKS, MASKS, task_weights={"conversion": 3.0})
    row = train_epoch(model, Batches(data, 4, shuffle=False), objective,
                      torch.optim.SGD(model.parameters(), lr=0.0))
    z = numpy_logits(model, data)
    click = log_loss(z["click"], data["label_click"])
    clicked = data["label_click"].numpy() == 1
    conversion = log_loss(z["conversion"], data["label_conversion"])[clicked]
    assert row["train_loss_click"] == pytest.approx(click.mean(), rel=1e-5)
    assert row["train_loss_conversion"] == pytest.approx(conversion.mean(), rel=1e-5)
    assert row["train_loss"] == pytest.approx(click.mean() + 3.0 * conversion.mean(), rel=1e-5)
    mean_of_batch_means = np.mean([click[:4].mean(), click[4:8].mean(), click[8:].mean()])
    assert abs(mean_of_batch_means - click.mean()) > 1e-3     # the test can tell them apart


def test_train_epoch_trains_every_batch_including_the_short_last_one():
    data = make_data(n=10, seed=2)
    model = lr_model()
    before = state(model)
    rows_seen = []
    original = model.forward
    model.forward = lambda batch: (rows_seen.append(len(batch["label_click"])), original(batch))[1]
    train_epoch(model, Batches(data, 4, shuffle=False), Objective(TASKS, MASKS),
                torch.optim.SGD(model.parameters(), lr=0.1))
    assert rows_seen == [4, 4, 2]
    assert not same_state(model, before)
    assert model.training


# ------------------------------------------------------------- evaluate_loss
def test_evaluate_loss_is_each_tasks_mean_over_its_rows_by_hand():
    data = make_data(n=203, seed=4)
    model = lr_model()
    weights = {"click": 1.5, "conversion": 0.5}
    losses = evaluate_loss(model, data, tasks=TASKS, task_masks=MASKS, task_weights=weights,
                           batch_size=50, device="cpu")
    z = numpy_logits(model, data)
    clicked = data["label_click"].numpy() == 1
    click = log_loss(z["click"], data["label_click"]).mean()
    conversion = log_loss(z["conversion"], data["label_conversion"])[clicked].mean()
    assert losses["loss_click"] == pytest.approx(click, rel=1e-5)
    assert losses["loss_conversion"] == pytest.approx(conversion, rel=1e-5)
    assert losses["loss"] == pytest.approx(1.5 * click + 0.5 * conversion, rel=1e-5)


def test_evaluate_loss_of_a_task_without_rows_is_nan_and_adds_nothing():
    data = make_data(n=50, seed=4)
    data["label_click"] = torch.zeros(50)
    data["label_conversion"] = torch.zeros(50)
    model = lr_model()
    losses = evaluate_loss(model, data, tasks=TASKS, task_masks=MASKS, device="cpu")
    assert math.isnan(losses["loss_conversion"])
    assert losses["loss"] == pytest.approx(losses["loss_click"])


def test_evaluate_loss_leaves_the_model_in_training_mode_and_unchanged():
    data = make_data(n=50, seed=4)
    model = lr_model().train()
    before = state(model)
    evaluate_loss(model, data, device="cpu")
    assert model.training and same_state(model, before)


# ------------------------------------------------------------ EarlyStopping
@pytest.fixture(scope="module")
def valid():
    return make_data(n=400, seed=5)


def constant_model(offset: float, rates: dict) -> LogisticRegression:
    """Predicts logit(rate) + offset for every row: the further from 0, the worse."""
    model = lr_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for i, task in enumerate(TASKS):
            rate = rates[task]
            model.intercept.logit[i] = math.log(rate / (1 - rate)) + offset
    return model


@pytest.fixture(scope="module")
def rates(valid):
    clicked = valid["label_click"] == 1
    return {"click": float(valid["label_click"].mean()),
            "conversion": float(valid["label_conversion"][clicked].mean())}


def watch(stopping, model, valid):
    return stopping.evaluate(model, valid, None, CPU, "fp32")


def test_patience_counts_epochs_since_the_best(valid, rates):
    stopping = EarlyStopping(Objective(TASKS, MASKS), patience=2)
    model = lr_model()
    stops = []
    for epoch, offset in enumerate([2.0, 3.0, 1.0, 1.5, 2.5, 0.0], start=1):
        model.load_state_dict(constant_model(offset, rates).state_dict())
        watch(stopping, model, valid)
        stops.append(stopping.should_stop(epoch, model))
        if stops[-1]:
            break
    assert stops == [False, False, False, False, True]
    assert stopping.best_epoch == 3
    assert stopping.restore_best(model)
    assert same_state(model, state(constant_model(1.0, rates)))


def test_nan_is_never_the_best_epoch(valid, rates):
    stopping = EarlyStopping(Objective(TASKS, MASKS), patience=3)
    model = lr_model()
    for epoch, offset in enumerate([math.nan, 1.0, math.nan], start=1):
        model.load_state_dict(constant_model(offset, rates).state_dict())
        row = watch(stopping, model, valid)
        assert math.isnan(row["valid_monitor"]) == math.isnan(offset)
        assert not stopping.should_stop(epoch, model)
    assert stopping.best_epoch == 2
    assert math.isfinite(stopping.best_loss)
    assert stopping.restore_best(model)
    assert same_state(model, state(constant_model(1.0, rates)))


def test_restore_best_is_false_and_leaves_the_model_alone_when_no_epoch_was_finite(valid,
                                                                                  rates):
    stopping = EarlyStopping(Objective(TASKS, MASKS), patience=5)
    model = constant_model(math.nan, rates)
    for epoch in (1, 2):
        watch(stopping, model, valid)
        assert not stopping.should_stop(epoch, model)
    with torch.no_grad():
        model.dense_weights.weight.fill_(0.25)
    before = state(model)
    assert stopping.restore_best(model) is False
    assert all(torch.equal(value, model.state_dict()[key]) or
               (value.isnan().all() and model.state_dict()[key].isnan().all())
               for key, value in before.items())
    assert model.dense_weights.weight.eq(0.25).all()


@pytest.mark.parametrize("monitor, weights", [
    (None, {"click": 1.0, "conversion": 2.0}), ("conversion", {"conversion": 1.0}),
    ({"click": 0.5, "conversion": 3.0}, {"click": 0.5, "conversion": 3.0}),
    ({"click": 1}, {"click": 1.0})])
def test_the_monitor_is_the_weighted_sum_of_the_named_tasks_losses(valid, monitor, weights):
    stopping = EarlyStopping(Objective(TASKS, MASKS, task_weights={"conversion": 2.0}),
                             monitor)
    row = watch(stopping, lr_model(), valid)
    expected = sum(w * row[f"valid_loss_{task}"] for task, w in weights.items())
    assert row["valid_monitor"] == pytest.approx(expected, rel=1e-6)
    if monitor is None:
        assert row["valid_monitor"] == pytest.approx(row["valid_loss"], rel=1e-6)


@pytest.mark.parametrize("monitor", ["save", "", {"save": 1.0}, {}, ["click"], 3,
                                     {"click": -1.0}, {"click": math.nan}, {"click": True}])
def test_bad_monitors_are_refused_naming_monitor(monitor):
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(Objective(TASKS, MASKS), monitor)


@pytest.mark.parametrize("patience", [0, -1, 1.5, True, None])
def test_bad_patience_is_refused(patience):
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(Objective(TASKS), patience=patience)


# ----------------------------------------------------------------------- fit
FAST = dict(epochs=3, batch_size=64, lr=0.05, progress=False, device="cpu")


def test_fit_without_valid_keeps_the_last_epoch():
    train = make_data(n=300, seed=6)
    result = fit(lr_model(), train, **FAST)
    assert result.best_epoch == 3
    assert result.history["epoch"].tolist() == [1, 2, 3]


def bad_fit_arguments():
    train = make_data(n=300, seed=6)
    no_label = {key: value for key, value in train.items() if key != "label_conversion"}
    nan_dense = {**train, "dense": train["dense"].clone().index_fill(0, torch.tensor([7]),
                                                                     math.nan)}
    bad_id = {**train, "user_id": train["user_id"].clone().index_fill(0, torch.tensor([0]),
                                                                       10_000)}
    return {
        "epochs=0": dict(epochs=0), "batch_size=0": dict(batch_size=0),
        "precision": dict(precision="fp8"), "patience=0": dict(patience=0),
        "monitor": dict(monitor="save"), "task_weights": dict(task_weights={"save": 1.0}),
        "task_masks": dict(task_masks={"conversion": "label_save"}),
        "distillation without teacher": dict(distillation={"click": 1.0}),
        "train without a label": dict(train=no_label),
        "valid with a NaN": dict(valid=nan_dense), "train with a bad id": dict(train=bad_id),
        "lr=-1": dict(lr=-1.0), "weight_decay=-1": dict(weight_decay=-1.0),
        "lr=nan": dict(lr=math.nan),
    }


@pytest.mark.parametrize("case", list(bad_fit_arguments()))
def test_fit_refusing_bad_arguments_leaves_the_model_untouched(case):
    """Even with start_at_base_rate=True no head bias moves before fit says no."""
    arguments = dict(train=make_data(n=300, seed=6), tasks=TASKS, task_masks=MASKS,
                     start_at_base_rate=True, **FAST)
    arguments.update(bad_fit_arguments()[case])
    model = lr_model()
    before = state(model)
    with pytest.raises(ValueError):
        fit(model, **arguments)
    assert changed(model, before) == [], f"fit moved weights before refusing {case}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_on_a_missing_cuda_device_leaves_the_model_untouched():
    model = lr_model()
    before = state(model)
    with pytest.raises((RuntimeError, AssertionError, ValueError)):
        fit(model, make_data(n=300, seed=6), start_at_base_rate=True,
            **{**FAST, "device": "cuda"})
    assert changed(model, before) == []


def test_a_monitor_whose_tasks_have_no_rows_in_valid_is_nan_not_a_perfect_zero(valid):
    """With no clicked row in valid, the conversion loss is unknown (NaN). A monitor that
    watches only conversion must then be NaN (never best), not 0.0, which would make the
    first such epoch the best one forever."""
    no_clicks = {**valid, "label_click": torch.zeros_like(valid["label_click"]),
                 "label_conversion": torch.zeros_like(valid["label_conversion"])}
    stopping = EarlyStopping(Objective(TASKS, MASKS), monitor="conversion")
    row = watch(stopping, lr_model(), no_clicks)
    assert math.isnan(row["valid_loss_conversion"])
    assert math.isnan(row["valid_monitor"])
    assert not stopping.should_stop(1, lr_model())
    assert stopping.best_epoch == 0
