"""Task heads: their outputs, and setting a task's output bias in every kind of model."""

import math

import pytest
import torch
from torch import nn

from ranking.delayed import DelayDistribution, DelayedFeedbackModel
from ranking.nn import DCNv2, EmbeddingMLP, LogisticRegression, TaskBias, TaskHeads
from ranking.nn.heads import set_output_bias
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.nn.sequence import SequenceRanker, SumPooling
from ranking.nn.towers import MultiTower
from ranking.objective import start_heads_at_base_rate, task_rates
from test_sequence import CARDINALITIES as SEQUENCE_CARDINALITIES
from test_sequence import DIM, events
from test_sequence import make_batch as sequence_batch
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)

TASKS = ("click", "save", "conversion")


def model_and_batch(name: str):
    """A small model of each kind with the tasks TASKS, and a batch it reads."""
    torch.manual_seed(0)
    small = dict(embedding_dim=4)
    if name == "SequenceRanker":
        model = SequenceRanker(SEQUENCE_CARDINALITIES, 2, events(), SumPooling(DIM), tasks=TASKS,
                               embedding_dim=4, hidden=(8,))
        return model, sequence_batch()
    models = {
        "LogisticRegression": lambda: LogisticRegression(CARDINALITIES, 4, tasks=TASKS),
        "EmbeddingMLP": lambda: EmbeddingMLP(CARDINALITIES, 4, TASKS, hidden=(8,), **small),
        "DCNv2": lambda: DCNv2(CARDINALITIES, 4, TASKS, cross_layers=1, hidden=(8,), **small),
        "SharedBottom": lambda: SharedBottom(CARDINALITIES, 4, TASKS, bottom=(8,), tower=(4,),
                                             **small),
        "MMoE": lambda: MMoE(CARDINALITIES, 4, TASKS, n_experts=2, expert=(8,), tower=(4,),
                             **small),
        "MultiTower": lambda: MultiTower(CARDINALITIES, 4, TASKS, bottom=(8,), tower=(4,),
                                         **small),
    }
    return models[name]().eval(), make_batch(b=24)


MODELS = ["LogisticRegression", "EmbeddingMLP", "DCNv2", "SharedBottom", "MMoE", "MultiTower",
          "SequenceRanker"]


# ---------------------------------------------------------------- TaskHeads
@pytest.mark.parametrize("hidden", [(), (5,), (6, 3)])
def test_task_heads_return_one_logit_per_row_for_each_task(hidden):
    heads = TaskHeads(8, ("click", "save"), hidden)
    out = heads(torch.randn(7, 8))
    assert list(out) == ["click", "save"]
    assert all(logit.shape == (7,) for logit in out.values())


def test_task_heads_are_indexed_by_task():
    heads = TaskHeads(8, ("click", "save"), (4,))
    h = torch.randn(3, 8)
    torch.testing.assert_close(heads(h)["save"], heads["save"](h).squeeze(-1))


def test_task_heads_read_one_task_name_alone_as_one_task():
    """As everywhere else (checks.task_names), a name alone is one task, not its letters."""
    assert list(TaskHeads(8, "click")) == ["click"]


def test_task_bias_reads_one_task_name_alone_as_one_task():
    assert TaskBias("click").tasks == ("click",)


# --------------------------------------------------------- set_output_bias
@pytest.mark.parametrize("name", MODELS)
def test_set_output_bias_shifts_only_that_tasks_logits_by_a_constant(name):
    """From a bias of 0, setting it to 2.5 adds exactly 2.5 to every row of that task's logit
    (so every surface tower of a MultiTower is set), and changes no other task."""
    model, batch = model_and_batch(name)
    set_output_bias(model, "save", 0.0)
    with torch.no_grad():
        before = model(batch)
        set_output_bias(model, "save", 2.5)
        after = model(batch)
    torch.testing.assert_close(after["save"] - before["save"],
                               torch.full_like(before["save"], 2.5), atol=1e-5, rtol=0)
    for task in ("click", "conversion"):
        assert torch.equal(after[task], before[task])


def test_set_output_bias_sets_the_head_of_every_surface_in_a_multi_tower():
    model, _ = model_and_batch("MultiTower")
    set_output_bias(model, "conversion", -4.0)
    for towers in model.towers:
        assert towers["conversion"][-1].bias.item() == -4.0


def test_set_output_bias_sets_logistic_regressions_intercept():
    model, _ = model_and_batch("LogisticRegression")
    set_output_bias(model, "save", -1.25)
    assert model.intercept.logit.tolist() == [0.0, -1.25, 0.0]


@pytest.mark.parametrize("name", ["LogisticRegression", "EmbeddingMLP", "MultiTower"])
def test_set_output_bias_refuses_an_unknown_task_naming_it_and_changes_nothing(name):
    model, _ = model_and_batch(name)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises((KeyError, ValueError), match="nope"):
        set_output_bias(model, "nope", 1.0)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in state.items())


class NoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)


@pytest.mark.parametrize("model, name", [(NoHeads(), "NoHeads"), (nn.Linear(3, 1), "Linear")])
def test_a_model_without_heads_raises_type_error_naming_its_class(model, name):
    with pytest.raises(TypeError, match=name):
        set_output_bias(model, "click", 0.0)


# ---------------------------------------------------- through the objective
DELAY = DelayDistribution(weights=(0.6, 0.4), mean_hours=(2.0, 30.0), window_hours=168.0)


def labelled(batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    n = len(batch["surface"])
    click = (torch.rand(n, generator=generator) < 0.3).float()
    click[:2] = torch.tensor([1.0, 0.0])
    conversion = click * (torch.rand(n, generator=generator) < 0.4).float()
    conversion[0] = 1.0
    return {**batch, "label_click": click, "label_save": torch.zeros(n).index_fill(0,
            torch.tensor([3]), 1.0), "label_conversion": conversion}


@pytest.mark.parametrize("inner", ["LogisticRegression", "EmbeddingMLP", "MultiTower"])
def test_a_delayed_feedback_model_gets_its_inner_heads_started_at_base_rate(inner):
    model, batch = model_and_batch(inner)
    data = labelled(batch)
    wrapped = DelayedFeedbackModel(model, DELAY, task="conversion")
    masks = {"conversion": "label_click"}
    start_heads_at_base_rate(wrapped, data, TASKS, masks)
    rates = task_rates(data, TASKS, masks)
    if inner == "LogisticRegression":
        biases = {task: [model.intercept.logit[i].item()] for i, task in enumerate(TASKS)}
    elif inner == "MultiTower":
        biases = {task: [towers[task][-1].bias.item() for towers in model.towers]
                  for task in TASKS}
    else:
        biases = {task: [model.heads[task].bias.item()] for task in TASKS}
    for task, rate in rates.items():
        assert 0 < rate < 1
        for bias in biases[task]:
            assert bias == pytest.approx(math.log(rate / (1 - rate)), abs=1e-6)


def test_start_heads_at_base_rate_clamps_a_rate_of_zero_to_a_finite_logit():
    model, batch = model_and_batch("EmbeddingMLP")
    data = {**labelled(batch), "label_save": torch.zeros(len(batch["surface"]))}
    start_heads_at_base_rate(model, data, ("save",))
    assert math.isfinite(model.heads["save"].bias.item()) and model.heads["save"].bias.item() < -10
