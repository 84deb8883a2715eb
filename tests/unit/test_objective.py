"""The training objective: its value by hand, masks, weights, distillation and its refusals."""

import math

import numpy as np
import pytest
import torch

from ranking.objective import Objective, boost_rare_tasks

TASKS = ("click", "conversion")
MASKS = {"conversion": "label_click"}


def batch_and_logits():
    """Six rows, three clicked; logits, labels and teachers chosen by hand."""
    batch = {
        "label_click": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
        "label_conversion": torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
        "teacher_click": torch.tensor([0.9, 0.2, 0.6, 0.1, 0.7, 0.3]),
        "teacher_conversion": torch.tensor([0.8, 0.5, 0.1, 0.5, 0.6, 0.5]),
    }
    logits = {"click": torch.tensor([1.5, -0.5, 0.2, -2.0, 0.7, 0.1]),
              "conversion": torch.tensor([0.3, 4.0, -1.0, -3.0, 1.2, 2.5])}
    return batch, logits


def log_loss(logits, targets) -> np.ndarray:
    """Per-row log loss of sigmoid(logit) against a (soft) target, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def test_loss_equals_the_weighted_mean_log_loss_per_task_plus_distillation_by_hand():
    batch, logits = batch_and_logits()
    objective = Objective(TASKS, MASKS, task_weights={"click": 0.5, "conversion": 3.0},
                          distillation={"click": 0.25, "conversion": 2.0})
    loss, sums = objective(logits, batch)
    clicked = batch["label_click"].numpy() == 1
    click = log_loss(logits["click"], batch["label_click"])
    conversion = log_loss(logits["conversion"], batch["label_conversion"])[clicked]
    distill_click = log_loss(logits["click"], batch["teacher_click"])
    distill_conversion = log_loss(logits["conversion"], batch["teacher_conversion"])[clicked]
    expected = (0.5 * click.mean() + 3.0 * conversion.mean()
                + 0.25 * distill_click.mean() + 2.0 * distill_conversion.mean())
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(sums["click"][0]) == pytest.approx(click.sum(), rel=1e-5)
    assert int(sums["click"][1]) == 6
    assert float(sums["conversion"][0]) == pytest.approx(conversion.sum(), rel=1e-5)
    assert int(sums["conversion"][1]) == 3


def test_weights_default_to_one_and_a_partial_dict_keeps_the_others_at_one():
    assert Objective(TASKS).weights == {"click": 1.0, "conversion": 1.0}
    assert Objective(TASKS, task_weights={"conversion": 4}).weights == {
        "click": 1.0, "conversion": 4.0}
    batch, logits = batch_and_logits()
    loss, _ = Objective(TASKS)(logits, batch)
    expected = (log_loss(logits["click"], batch["label_click"]).mean()
                + log_loss(logits["conversion"], batch["label_conversion"]).mean())
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_a_masked_task_ignores_the_logits_of_rows_it_does_not_count():
    batch, logits = batch_and_logits()
    objective = Objective(TASKS, MASKS, distillation={"conversion": 1.0})
    changed = dict(logits, conversion=torch.where(batch["label_click"] == 1,
                                                  logits["conversion"], 50.0))
    assert float(objective(changed, batch)[0]) == pytest.approx(
        float(objective(logits, batch)[0]), rel=1e-6)


def test_a_masked_task_with_no_rows_in_the_batch_adds_zero_and_no_nan():
    batch, logits = batch_and_logits()
    batch["label_click"] = torch.zeros(6)
    logits = {task: logit.clone().requires_grad_() for task, logit in logits.items()}
    objective = Objective(TASKS, MASKS, distillation={"conversion": 1.0})
    loss, sums = objective(logits, batch)
    expected = log_loss(logits["click"].detach(), batch["label_click"]).mean()
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert sums["conversion"][0].item() == 0.0 and sums["conversion"][1].item() == 0
    loss.backward()
    assert torch.isfinite(logits["click"].grad).all()
    assert torch.equal(logits["conversion"].grad, torch.zeros(6))


def test_missing_logits_for_a_task_are_refused_naming_it():
    batch, logits = batch_and_logits()
    with pytest.raises(ValueError, match="conversion"):
        Objective(TASKS)({"click": logits["click"]}, batch)


@pytest.mark.parametrize("argument", ["task_masks", "task_weights", "distillation"])
def test_unknown_task_names_are_refused_naming_the_argument(argument):
    value = {"save": "label_click"} if argument == "task_masks" else {"save": 1.0}
    with pytest.raises(ValueError, match=rf"{argument}.*'save'"):
        Objective(TASKS, **{argument: value})


@pytest.mark.parametrize("argument", ["task_masks", "task_weights", "distillation"])
def test_a_setting_that_is_not_a_dict_is_refused_naming_the_argument(argument):
    with pytest.raises(ValueError, match=argument):
        Objective(TASKS, **{argument: [("click", 1.0)]})


BAD_WEIGHTS = [-1.0, -1e-12, math.nan, math.inf, np.float64("nan"), True, np.bool_(False),
               "2", None, torch.tensor(1.0)]


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
def test_bad_task_weights_are_refused_naming_the_task(weight):
    with pytest.raises(ValueError, match=r"task_weights\['conversion'\]"):
        Objective(TASKS, task_weights={"conversion": weight})


@pytest.mark.parametrize("weight", BAD_WEIGHTS)
def test_bad_distillation_weights_are_refused_naming_the_task(weight):
    with pytest.raises(ValueError, match=r"distillation\['click'\]"):
        Objective(TASKS, distillation={"click": weight})


@pytest.mark.parametrize("tasks", [(), ("click", "click"), ("",)])
def test_bad_task_lists_are_refused(tasks):
    with pytest.raises(ValueError, match="tasks"):
        Objective(tasks)


def test_one_task_name_alone_is_one_task():
    assert Objective("conversion").tasks == ("conversion",)


# -------------------------------------------------------------------- check
def test_check_accepts_good_data_and_ignores_missing_teachers_unless_asked():
    batch, _ = batch_and_logits()
    del batch["teacher_click"]
    Objective(TASKS, MASKS, distillation={"click": 1.0}).check(batch, "valid")


def test_check_refuses_a_missing_label_naming_data_and_key():
    batch, _ = batch_and_logits()
    del batch["label_conversion"]
    with pytest.raises(ValueError, match="train has no 'label_conversion'"):
        Objective(TASKS).check(batch, "train")


def test_check_refuses_a_missing_mask_key_naming_it_and_its_task():
    batch, _ = batch_and_logits()
    with pytest.raises(ValueError, match=r"train has no 'label_save'.*'conversion'"):
        Objective(TASKS, {"conversion": "label_save"}).check(batch, "train")


def test_check_with_teachers_refuses_a_missing_teacher():
    batch, _ = batch_and_logits()
    del batch["teacher_conversion"]
    objective = Objective(TASKS, distillation={"conversion": 0.5})
    with pytest.raises(ValueError, match=r"train\['teacher_conversion'\]"):
        objective.check(batch, "train", teachers=True)


@pytest.mark.parametrize("teacher", [
    torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5, 1.5]), torch.tensor([0.5, -0.1, 0.5, 0.5, 0.5, 0.5]),
    torch.tensor([0.5, 0.5, math.nan, 0.5, 0.5, 0.5]), torch.tensor([0, 1, 0, 1, 0, 1])])
def test_check_with_teachers_refuses_a_teacher_that_is_not_probabilities(teacher):
    batch, _ = batch_and_logits()
    batch["teacher_click"] = teacher
    objective = Objective(TASKS, distillation={"click": 0.5})
    with pytest.raises(ValueError, match=r"train\['teacher_click'\].*\[0, 1\]"):
        objective.check(batch, "train", teachers=True)


def test_boost_rare_tasks_raises_every_task_but_the_first():
    weights = {"click": 1.0, "save": 2.5, "hide": 6.0}
    assert boost_rare_tasks(weights, 4.0) == {"click": 1.0, "save": 10.0, "hide": 24.0}
    assert boost_rare_tasks(weights, 1.0) == weights
    with pytest.raises(ValueError, match="boost"):
        boost_rare_tasks(weights, -1.0)
