"""Multi-task models: one logit per task, what each task shares, the MMoE gates."""

import pytest
import torch

from ranking.nn.heads import set_output_bias
from ranking.nn.multitask import MMoE, SharedBottom
from ranking.train import fit, predict
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)
TASKS = ("click", "save", "conversion")


@pytest.mark.parametrize("model_class", [SharedBottom, MMoE])
def test_one_logit_per_task(model_class):
    model = model_class(CARDINALITIES, n_dense=4, tasks=TASKS, embedding_dim=4)
    out = model(make_batch())
    assert set(out) == set(TASKS)
    assert all(logit.shape == (8,) for logit in out.values())


@pytest.mark.parametrize("model_class", [SharedBottom, MMoE])
def test_a_task_trains_its_own_tower_and_the_shared_parts_only(model_class):
    model = model_class(CARDINALITIES, n_dense=4, tasks=TASKS, embedding_dim=4)
    model(make_batch())["save"].sum().backward()
    for task, tower in model.towers.items():
        has_grad = any(p.grad is not None for p in tower.parameters())
        assert has_grad == (task == "save"), task
    assert all(p.grad is not None for p in model.input.parameters())


def test_shared_bottom_tasks_see_the_same_bottom_output():
    model = SharedBottom(CARDINALITIES, n_dense=4, tasks=TASKS, embedding_dim=4, tower=())
    batch = make_batch()
    shared = model.bottom(model.input(batch))
    for task in TASKS:      # with no hidden tower layers each task is a linear read-out of the bottom
        torch.testing.assert_close(model(batch)[task], model.towers[task](shared).squeeze(-1))


def test_mmoe_gates_are_distributions_over_the_experts_and_differ_per_task():
    model = MMoE(CARDINALITIES, n_dense=4, tasks=TASKS, embedding_dim=4, n_experts=3)
    weights = model.gate_weights(model.input(make_batch()))
    for task in TASKS:
        assert weights[task].shape == (8, 3)
        assert torch.all(weights[task] >= 0)
        torch.testing.assert_close(weights[task].sum(dim=1), torch.ones(8))
    assert not torch.allclose(weights["click"], weights["save"])


def test_mmoe_output_is_the_gate_weighted_mix_of_the_experts():
    model = MMoE(CARDINALITIES, n_dense=4, tasks=("click",), embedding_dim=4, n_experts=2, tower=())
    batch = make_batch()
    x = model.input(batch)
    weights = model.gate_weights(x)["click"]                              # (8, 2)
    mixed = weights[:, :1] * model.experts[0](x) + weights[:, 1:] * model.experts[1](x)
    torch.testing.assert_close(model(batch)["click"], model.towers["click"](mixed).squeeze(-1))


def test_multi_task_model_trains_through_the_loop_with_a_masked_task():
    batch = make_batch(b=512)
    batch["label_click"] = (batch["dense"][:, 0] > 0).float()
    batch["label_conversion"] = (batch["dense"][:, 1] > 0).float() * batch["label_click"]
    model = MMoE(CARDINALITIES, n_dense=4, tasks=("click", "conversion"), embedding_dim=4)
    result = fit(model, batch, batch, tasks=("click", "conversion"), task_masks={"conversion": "label_click"},
                 epochs=30, batch_size=128, lr=1e-2, progress=False, patience=30)
    history = result.history
    assert history["valid_loss_click"].iloc[-1] < 0.5 * history["valid_loss_click"].iloc[0]
    assert history["valid_loss_conversion"].iloc[-1] < 0.7 * history["valid_loss_conversion"].iloc[0]
    probs = predict(model, batch)
    assert set(probs) == {"click", "conversion"} and probs["click"].shape == (512,)


@pytest.mark.parametrize("build, match", [
    (lambda: MMoE(CARDINALITIES, 4, TASKS, n_experts=0), "n_experts"),
    (lambda: MMoE(CARDINALITIES, 4, ()), "tasks"),
    (lambda: SharedBottom(CARDINALITIES, 4, ("click", "click")), "tasks"),
    (lambda: SharedBottom(CARDINALITIES, -1, TASKS), "n_dense"),
])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("model_class", [SharedBottom, MMoE])
@pytest.mark.parametrize("tower", [(16,), ()])
def test_set_output_bias_moves_only_that_tasks_logit(model_class, tower):
    model = model_class(CARDINALITIES, n_dense=4, tasks=TASKS, embedding_dim=4, tower=tower)
    batch = make_batch()
    before = {task: logit.detach() for task, logit in model(batch).items()}
    set_output_bias(model, "save", -4.0)
    with torch.no_grad():
        after = model(batch)
    torch.testing.assert_close(after["click"], before["click"])
    shift = after["save"] - before["save"]
    torch.testing.assert_close(shift, torch.full_like(shift, float(shift[0])))   # one constant shift
    output_layer = model.towers["save"][-1] if tower else model.towers["save"]
    assert output_layer.bias.detach().item() == -4.0
