"""DCN V2: the cross layer against a hand computation, what one layer can represent,
the dense-input normalizations, and the DCNv2 model's shapes and argument checks."""

import pytest
import torch
from torch import nn

from ranking.nn import DCNv2, CrossNetV2, DenseInput, EmbeddingMLP
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)


def set_linear(linear: nn.Linear, weight: list[list[float]], bias: list[float]) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight))
        linear.bias.copy_(torch.tensor(bias))


def test_cross_net_matches_hand_computation():
    cross = CrossNetV2(input_dim=2, num_layers=2)
    set_linear(cross.layers[0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 1.0])
    set_linear(cross.layers[1], [[0.0, 1.0], [1.0, 0.0]], [0.0, 0.0])
    x0 = torch.tensor([[1.0, 2.0]])
    # layer 1: W x0 + b = [1, 3];  x1 = x0 * [1, 3] + x0 = [1, 6] + [1, 2] = [2, 8]
    # layer 2: W x1 + b = [8, 2];  x2 = x0 * [8, 2] + x1 = [8, 4] + [2, 8] = [10, 12]
    torch.testing.assert_close(cross(x0), torch.tensor([[10.0, 12.0]]))


def test_cross_net_follows_the_formula_on_a_batch():
    cross = CrossNetV2(input_dim=5, num_layers=3)
    x0 = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    expected = x0
    for linear in cross.layers:
        expected = x0 * (expected @ linear.weight.T + linear.bias) + expected
    out = cross(x0)
    assert out.shape == (7, 5)
    torch.testing.assert_close(out, expected)


def test_cross_net_with_no_layers_is_the_identity():
    cross = CrossNetV2(input_dim=4, num_layers=0)
    x0 = torch.randn(3, 4)
    assert torch.equal(cross(x0), x0)
    assert sum(p.numel() for p in cross.parameters()) == 0


def test_one_cross_layer_represents_a_pairwise_product_exactly():
    """W = [[0, 1], [0, 0]], b = [-1, -1]: output 0 is x0 * (x1 - 1) + x0 = x0 * x1."""
    cross = CrossNetV2(input_dim=2, num_layers=1)
    set_linear(cross.layers[0], [[0.0, 1.0], [0.0, 0.0]], [-1.0, -1.0])
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cross(x)[:, 0], x[:, 0] * x[:, 1])


def fit_mse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x).squeeze(-1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(nn.functional.mse_loss(model(x).squeeze(-1), y))


def test_one_cross_layer_learns_a_product_a_linear_model_cannot():
    """y = x0 * x1 has variance 1 and no linear part: a linear model stays near MSE 1."""
    x = torch.randn(1024, 2, generator=torch.Generator().manual_seed(0))
    y = x[:, 0] * x[:, 1]
    torch.manual_seed(0)
    cross_mse = fit_mse(nn.Sequential(CrossNetV2(2, num_layers=1), nn.Linear(2, 1)), x, y)
    torch.manual_seed(0)
    linear_mse = fit_mse(nn.Linear(2, 1), x, y)
    assert cross_mse < 0.01
    assert linear_mse > 0.8


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_dense_input_normalizations(normalization):
    dense = 5.0 + 3.0 * torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    out = DenseInput(4, normalization)(dense)
    assert out.shape == (256, 4)
    if normalization == "none":
        assert torch.equal(out, dense)
    elif normalization == "batch":   # each column: mean 0, variance 1 over the batch
        torch.testing.assert_close(out.mean(dim=0), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(dim=0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    else:                            # each row: mean 0, variance 1 over its columns
        torch.testing.assert_close(out.mean(dim=1), torch.zeros(256), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(dim=1, unbiased=False), torch.ones(256), atol=1e-3, rtol=0)


def test_dcnv2_returns_one_logit_per_task_and_trains_every_part():
    model = DCNv2(CARDINALITIES, n_dense=4, tasks=("click", "save"), embedding_dim=4, cross_layers=2,
                  hidden=(16, 8), dense_normalization="batch")
    assert model.cross.layers[0].in_features == 3 * 4 + 4
    out = model(make_batch())
    assert set(out) == {"click", "save"}
    assert all(logit.shape == (8,) and logit.dtype == torch.float32 for logit in out.values())
    out["click"].sum().backward()
    assert model.heads["save"].weight.grad is None
    for part in (model.input.embedding, model.input.dense_input, model.cross, model.mlp):
        assert all(p.grad is not None for p in part.parameters())


def test_dcnv2_without_dense_features_or_cross_layers():
    batch = make_batch()
    del batch["dense"]
    model = DCNv2(CARDINALITIES, n_dense=0, cross_layers=0, embedding_dim=4, hidden=(8,))
    assert model.input.dense_input is None and len(model.cross.layers) == 0
    assert model(batch)["click"].shape == (8,)


def test_parallel_dcnv2_heads_see_the_crosses_and_the_mlp_side_by_side():
    model = DCNv2(CARDINALITIES, n_dense=4, embedding_dim=4, cross_layers=2, hidden=(16, 8), structure="parallel")
    assert model.heads["click"].in_features == (3 * 4 + 4) + 8
    assert model.mlp.layers[0].in_features == 3 * 4 + 4          # the MLP reads x0, not the crosses
    out = model(make_batch())["click"]
    assert out.shape == (8,)
    out.sum().backward()
    for part in (model.input.embedding, model.cross, model.mlp):
        assert all(p.grad is not None for p in part.parameters())
    # with the cross part of the head zeroed, the output no longer depends on the cross network
    with torch.no_grad():
        model.heads["click"].weight[:, : 3 * 4 + 4] = 0.0
        before = model(make_batch())["click"]
        for layer in model.cross.layers:
            layer.weight.normal_()
        torch.testing.assert_close(model(make_batch())["click"], before)


def test_embedding_mlp_default_keeps_its_parameters():
    """dense_normalization defaults to "none": no new parameters, only the input's embeddings."""
    keys = {"input.embedding.tables.user_id.weight", "input.embedding.tables.surface.weight",
            "input.embedding.tables.is_video.weight", "mlp.layers.0.weight", "mlp.layers.0.bias",
            "mlp.layers.2.weight", "mlp.layers.2.bias", "heads.click.weight", "heads.click.bias"}
    assert set(EmbeddingMLP(CARDINALITIES, 4).state_dict()) == keys
    with_norm = EmbeddingMLP(CARDINALITIES, 4, dense_normalization="layer")
    assert with_norm(make_batch())["click"].shape == (8,)


@pytest.mark.parametrize("build, match", [
    (lambda: CrossNetV2(0, 2), "input_dim"),
    (lambda: CrossNetV2(4, -1), "num_layers"),
    (lambda: CrossNetV2(4, 1.5), "num_layers"),
    (lambda: DenseInput(4, "group"), "normalization"),
    (lambda: DenseInput(0, "batch"), "n_dense"),
    (lambda: DCNv2(CARDINALITIES, 4, cross_layers=-1), "num_layers"),
    (lambda: DCNv2(CARDINALITIES, 4, dense_normalization="minmax"), "dense_normalization"),
    (lambda: DCNv2(CARDINALITIES, 0, dense_normalization="minmax"), "dense_normalization"),
    (lambda: DCNv2(CARDINALITIES, -1), "n_dense"),
    (lambda: DCNv2(CARDINALITIES, 4, tasks=()), "tasks"),
    (lambda: DCNv2(CARDINALITIES, 4, structure="serial"), "structure"),
    (lambda: EmbeddingMLP(CARDINALITIES, 4, dense_normalization="Batch"), "dense_normalization"),
])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()
