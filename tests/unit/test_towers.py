"""The multi-tower model: each row is scored by its own surface's tower."""

import pytest
import torch

from ranking.nn.heads import set_output_bias
from ranking.nn.towers import MultiTower
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)


def test_each_row_gets_its_surface_tower():
    model = MultiTower(CARDINALITIES, n_dense=4, tasks=("click", "save"), embedding_dim=4)
    batch = make_batch(b=32)
    out = model(batch)
    shared = model.bottom(model.input(batch))
    for task in ("click", "save"):
        assert out[task].shape == (32,)
        for row in range(32):
            tower = model.towers[int(batch["surface"][row])][task]
            torch.testing.assert_close(out[task][row], tower(shared[row:row + 1]).squeeze())


def test_a_tower_learns_only_from_its_surface_rows():
    model = MultiTower(CARDINALITIES, n_dense=4, embedding_dim=4)
    batch = make_batch(b=32)
    batch["surface"] = torch.where(batch["surface"] == 2, 0, batch["surface"])   # no row on surface 2
    model(batch)["click"].sum().backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.towers[2].parameters())
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in model.towers[0].parameters())
    assert all(p.grad is not None for p in model.bottom.parameters())


@pytest.mark.parametrize("build, match", [
    (lambda: MultiTower(CARDINALITIES, 4, n_surfaces=0), "n_surfaces"),
    (lambda: MultiTower({"user_id": 5}, 4), "surface"),
    (lambda: MultiTower(CARDINALITIES, 4, tasks=()), "tasks"),
])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_set_output_bias_sets_every_surface_tower():
    model = MultiTower(CARDINALITIES, n_dense=4, tasks=("click", "save"), embedding_dim=4)
    set_output_bias(model, "save", -3.0)
    for towers in model.towers:
        assert towers["save"][-1].bias.detach().item() == -3.0
        assert towers["click"][-1].bias.detach().item() != -3.0
