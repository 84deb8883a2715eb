"""Building blocks and first models: shapes, the LR's additive structure, argument checks."""

import pytest
import torch
from torch import nn

from ranking.nn import MLP, EmbeddingMLP, FeatureEmbedding, LogisticRegression
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)


def test_feature_embedding_shape_and_tables():
    embedding = FeatureEmbedding(CARDINALITIES, dim=5)
    out = embedding(make_batch())
    assert out.shape == (8, 3, 5)
    assert embedding.n_fields == 3 and embedding.output_dim == 15
    assert embedding.tables["user_id"].num_embeddings == 50
    batch = make_batch()
    # field 1 of the output is the surface table's row for each surface id
    assert torch.equal(out[:, 1], embedding.tables["surface"].weight[batch["surface"]])


def test_mlp_shape_dropout_and_activation():
    mlp = MLP(10, (32, 16), dropout=0.1, activation=nn.GELU)
    assert mlp(torch.randn(4, 10)).shape == (4, 16)
    assert mlp.output_dim == 16
    assert sum(isinstance(layer, nn.Dropout) for layer in mlp.layers) == 2
    assert sum(isinstance(layer, nn.GELU) for layer in mlp.layers) == 2
    assert not any(isinstance(layer, nn.Dropout) for layer in MLP(10, (8,)).layers)


@pytest.mark.parametrize("model_class", [LogisticRegression, EmbeddingMLP])
def test_models_return_one_logit_per_task(model_class):
    model = model_class(CARDINALITIES, n_dense=4, tasks=("click", "conversion"))
    out = model(make_batch())
    assert set(out) == {"click", "conversion"}
    assert all(logit.shape == (8,) and logit.dtype == torch.float32 for logit in out.values())


@pytest.mark.parametrize("model_class", [LogisticRegression, EmbeddingMLP])
def test_models_without_dense_features_ignore_dense(model_class):
    model = model_class(CARDINALITIES, n_dense=0)
    batch = make_batch()
    del batch["dense"]
    assert model(batch)["click"].shape == (8,)


def test_logistic_regression_is_additive_in_its_features():
    """Changing the user moves the logit by the same amount whatever the dense features."""
    model = LogisticRegression(CARDINALITIES, n_dense=4)
    batch = make_batch(b=8)
    other_user = dict(batch, user_id=(batch["user_id"] + 1) % 50)
    shift = model(other_user)["click"] - model(batch)["click"]
    other_dense = dict(batch, dense=torch.randn(8, 4))
    other_both = dict(other_dense, user_id=other_user["user_id"])
    torch.testing.assert_close(model(other_both)["click"] - model(other_dense)["click"], shift)
    weights = model.id_weights.tables["user_id"].weight[:, 0]
    torch.testing.assert_close(shift, weights[other_user["user_id"]] - weights[batch["user_id"]])


def test_embedding_mlp_heads_are_per_task_and_bottom_is_shared():
    model = EmbeddingMLP(CARDINALITIES, n_dense=4, tasks=("click", "save"), embedding_dim=4, hidden=(16, 8))
    assert set(model.heads) == {"click", "save"}
    assert model.mlp.layers[0].in_features == 3 * 4 + 4
    model(make_batch())["save"].sum().backward()
    assert model.heads["click"].weight.grad is None      # another task's head gets no gradient
    assert model.mlp.layers[0].weight.grad is not None   # the shared bottom does


@pytest.mark.parametrize("build, match", [
    (lambda: FeatureEmbedding({}, 4), "cardinalities"),
    (lambda: FeatureEmbedding({"user_id": 0}, 4), "user_id"),
    (lambda: FeatureEmbedding(CARDINALITIES, 0), "dim"),
    (lambda: MLP(0, (4,)), "in_dim"),
    (lambda: MLP(4, ()), "hidden"),
    (lambda: MLP(4, (8, 0)), "hidden"),
    (lambda: MLP(4, (8,), dropout=1.0), "dropout"),
    (lambda: LogisticRegression(CARDINALITIES, 4, tasks=()), "tasks"),
    (lambda: LogisticRegression(CARDINALITIES, -1), "n_dense"),
    (lambda: EmbeddingMLP(CARDINALITIES, 4, tasks=("click", "click")), "tasks"),
])
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()
