"""Resilient Batch Norm: Batch Norm's statistics while the data is healthy, and
running statistics a constant or exploding column cannot ruin.

Every comparison is against ``nn.BatchNorm1d`` (or ``F.batch_norm`` with the
statistics the layer should be using), so a change to what is masked, when the
warm-up ends or which statistics normalize shows up as a number that moved.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ranking.nn import DCNv2, DenseInput, ResilientBatchNorm1d, make_resilient
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)

C = 4


def batches(n: int, rows: int = 64, columns: int = C, seed: int = 0) -> list[torch.Tensor]:
    """``n`` batches of unit-variance columns with means 0, 1, 2, ... (the data is healthy)."""
    generator = torch.Generator().manual_seed(seed)
    shift = torch.arange(columns, dtype=torch.float32)
    return [torch.randn(rows, columns, generator=generator) + shift for _ in range(n)]


def same_parameters(source: nn.BatchNorm1d, target: nn.BatchNorm1d) -> None:
    target.load_state_dict(source.state_dict())


def randomize_affine(layer: nn.BatchNorm1d, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(0.5 + torch.rand(layer.num_features, generator=generator))
        layer.bias.copy_(torch.randn(layer.num_features, generator=generator))


# ------------------------------------------------------------------ healthy data: Batch Norm


def test_without_masking_running_statistics_follow_batch_norm_exactly():
    bn = nn.BatchNorm1d(C)
    rbn = ResilientBatchNorm1d(C, warmup_batches=0)
    bn.train(), rbn.train()
    for x in batches(60):
        bn(x), rbn(x)
    torch.testing.assert_close(rbn.running_mean, bn.running_mean)
    torch.testing.assert_close(rbn.running_var, bn.running_var)
    assert int(rbn.num_batches_tracked) == int(bn.num_batches_tracked) == 60
    assert torch.equal(rbn.masked_updates, torch.zeros(C, dtype=torch.long))
    # and the statistics did travel: means 0, 1, 2, 3, variances near 1
    torch.testing.assert_close(rbn.running_mean, torch.arange(C, dtype=torch.float32), atol=0.15, rtol=0)


def test_eval_output_is_batch_norm_with_the_same_state():
    bn = nn.BatchNorm1d(C)
    for x in batches(5):
        bn(x)
    randomize_affine(bn)
    rbn = ResilientBatchNorm1d(C)
    same_parameters(bn, rbn)
    bn.eval(), rbn.eval()
    x = 3.0 * torch.randn(32, C) - 1.0
    torch.testing.assert_close(rbn(x), bn(x), rtol=0, atol=0)
    one_row = x[:1]                      # eval mode judges no batch: one row is fine
    torch.testing.assert_close(rbn(one_row), bn(one_row), rtol=0, atol=0)
    # eval does not touch the statistics
    before = rbn.running_var.clone()
    rbn(x)
    assert torch.equal(rbn.running_var, before) and int(rbn.num_batches_tracked) == 5


def test_state_dicts_load_both_ways_with_the_same_keys():
    bn = nn.BatchNorm1d(C)
    for x in batches(3):
        bn(x)
    randomize_affine(bn)
    rbn = ResilientBatchNorm1d(C)
    assert set(rbn.state_dict()) == set(bn.state_dict())
    assert "masked_updates" not in rbn.state_dict()            # a counter, not a checkpoint entry
    rbn.load_state_dict(bn.state_dict())                       # strict
    for key, value in bn.state_dict().items():
        assert torch.equal(rbn.state_dict()[key], value), key
    # and back: a resilient layer's checkpoint loads into plain Batch Norm
    for x in batches(4, seed=5):
        rbn(x)
    plain = nn.BatchNorm1d(C)
    plain.load_state_dict(rbn.state_dict())
    for key, value in rbn.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value), key
    assert int(plain.num_batches_tracked) == 7


def test_during_warm_up_training_is_batch_norm():
    bn = nn.BatchNorm1d(C)
    randomize_affine(bn)
    rbn = ResilientBatchNorm1d(C, warmup_batches=10)
    same_parameters(bn, rbn)
    for x in batches(10):
        torch.testing.assert_close(rbn(x), bn(x))
    torch.testing.assert_close(rbn.running_mean, bn.running_mean)
    torch.testing.assert_close(rbn.running_var, bn.running_var)


def test_after_warm_up_training_normalizes_with_the_updated_running_statistics():
    rbn = ResilientBatchNorm1d(C, warmup_batches=3)
    randomize_affine(rbn)
    data = batches(6)
    for x in data[:3]:
        rbn(x)
    bn = nn.BatchNorm1d(C)
    same_parameters(rbn, bn)
    for x in data[3:]:
        out = rbn(x)
        expected = F.batch_norm(x, rbn.running_mean, rbn.running_var, rbn.weight, rbn.bias,
                                False, 0.0, rbn.eps)
        torch.testing.assert_close(out, expected)
        # not the batch statistics any more: Batch Norm in training gives another output
        assert not torch.allclose(out, bn(x), atol=1e-3)
    # the statistics still moved: the fourth to sixth batches were not masked
    assert int(rbn.num_batches_tracked) == 6
    assert torch.equal(rbn.masked_updates, torch.zeros(C, dtype=torch.long))


def test_warm_up_ends_after_exactly_warmup_batches():
    rbn = ResilientBatchNorm1d(C, warmup_batches=2)
    data = batches(3)
    first = rbn(data[0])
    second = rbn(data[1])
    third = rbn(data[2])
    for out in (first, second):                        # batch statistics: mean 0 per column
        torch.testing.assert_close(out.mean(dim=0), torch.zeros(C), atol=1e-5, rtol=0)
    # the third normalizes with running statistics still far from the data's means 0..3
    assert third.mean(dim=0).abs().max() > 0.5


def test_gradients_reach_weight_bias_and_input():
    rbn = ResilientBatchNorm1d(C, warmup_batches=0)
    randomize_affine(rbn)
    x = batches(1)[0].requires_grad_()
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    (rbn(x) * upstream).sum().backward()
    for grad in (rbn.weight.grad, rbn.bias.grad, x.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    torch.testing.assert_close(rbn.bias.grad, upstream.sum(dim=0))
    # with running statistics (constants), d out / d x = weight / sqrt(running_var + eps)
    scale = rbn.weight.detach() / torch.sqrt(rbn.running_var + rbn.eps)
    torch.testing.assert_close(x.grad, upstream * scale)


def test_during_warm_up_gradients_are_batch_norms():
    bn = nn.BatchNorm1d(C)
    randomize_affine(bn)
    rbn = ResilientBatchNorm1d(C, warmup_batches=5)
    same_parameters(bn, rbn)
    x = batches(1)[0]
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    grads = []
    for layer in (bn, rbn):
        leaf = x.clone().requires_grad_()
        (layer(leaf) * upstream).sum().backward()
        grads.append((leaf.grad, layer.weight.grad, layer.bias.grad))
    for expected, actual in zip(*grads):
        torch.testing.assert_close(actual, expected)


# ------------------------------------------------------------------ broken columns: masked


def test_a_constant_column_is_kept_out_of_the_running_update():
    rbn = ResilientBatchNorm1d(C, warmup_batches=0)
    for x in batches(5):
        rbn(x)
    mean_before, var_before = rbn.running_mean.clone(), rbn.running_var.clone()
    for x in batches(7, seed=9):
        x[:, 2] = 0.0                                   # column 2 broken: always 0
        rbn(x)
    assert rbn.running_mean[2] == mean_before[2] and rbn.running_var[2] == var_before[2]
    for column in (0, 1, 3):                            # the healthy columns still learn
        assert rbn.running_mean[column] != mean_before[column]
        assert rbn.running_var[column] != var_before[column]
    assert rbn.masked_updates.tolist() == [0, 0, 7, 0]
    assert int(rbn.num_batches_tracked) == 12


def test_a_constant_column_is_masked_during_warm_up_too():
    rbn = ResilientBatchNorm1d(C, warmup_batches=100)
    x = batches(1)[0]
    x[:, 1] = 5.0
    rbn(x)
    assert rbn.running_mean[1] == 0.0 and rbn.running_var[1] == 1.0
    assert rbn.running_mean[0] != 0.0
    assert rbn.masked_updates.tolist() == [0, 1, 0, 0]


def test_minimal_variance_is_the_threshold():
    rbn = ResilientBatchNorm1d(2, warmup_batches=0, minimal_variance=0.5,
                               variance_shift_threshold=math.inf)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 2, generator=generator)
    x = (x - x.mean(0)) / x.std(0)                   # variance exactly 1 per column
    x[:, 0] *= math.sqrt(0.4)                          # variance 0.4 < 0.5: masked
    x[:, 1] *= math.sqrt(0.6)                          # variance 0.6 >= 0.5: kept
    rbn(x)
    assert rbn.masked_updates.tolist() == [1, 0]


@pytest.mark.parametrize("factor", [10.0, 0.1], ids=["variance up 100x", "variance down 100x"])
def test_a_variance_shift_is_masked_after_warm_up(factor):
    rbn = ResilientBatchNorm1d(C, warmup_batches=5)
    for x in batches(5):                                # warm-up on healthy data
        rbn(x)
    var_before = rbn.running_var.clone()
    x = batches(1, seed=7)[0]
    x[:, 1] = (x[:, 1] - 1.0) * factor + 1.0            # column 1's variance times factor**2
    rbn(x)
    assert rbn.running_var[1] == var_before[1]
    assert rbn.masked_updates.tolist() == [0, 1, 0, 0]
    assert (rbn.running_var[[0, 2, 3]] != var_before[[0, 2, 3]]).all()


def test_a_variance_shift_during_warm_up_updates_the_statistics():
    """The running variance starts at 1, not at the data's: during warm-up only constants are masked."""
    rbn = ResilientBatchNorm1d(C, warmup_batches=5)
    x = batches(1)[0]
    x[:, 1] = x[:, 1] * 10.0                             # variance ~100 against a running 1
    rbn(x)
    assert rbn.masked_updates.tolist() == [0, 0, 0, 0]
    expected = 0.9 * 1.0 + 0.1 * x[:, 1].var()
    torch.testing.assert_close(rbn.running_var[1], expected)
    assert rbn.running_var[1] > 5


def test_a_shift_within_the_threshold_is_not_masked():
    rbn = ResilientBatchNorm1d(C, warmup_batches=5)
    for x in batches(5):
        rbn(x)
    x = batches(1, seed=7)[0]
    x[:, 1] = x[:, 1] * 2.0                              # variance times 4 < 10
    rbn(x)
    assert rbn.masked_updates.tolist() == [0, 0, 0, 0]


def test_update_mask_compares_with_the_running_variance_both_ways():
    rbn = ResilientBatchNorm1d(5, minimal_variance=1e-3, variance_shift_threshold=10.0)
    with torch.no_grad():
        rbn.running_var.copy_(torch.tensor([1.0, 1.0, 1.0, 1.0, 2.0]))
    batch_var = torch.tensor([1e-4, 0.05, 5.0, 11.0, 11.0])
    assert rbn.update_mask(batch_var, warm=True).tolist() == [True, True, False, True, False]
    assert rbn.update_mask(batch_var, warm=False).tolist() == [True, False, False, False, False]


# ------------------------------------------------------------------ fill_masked


def test_fill_masked_turns_a_masked_column_into_bias_in_training():
    torch.manual_seed(0)
    plain = ResilientBatchNorm1d(C, warmup_batches=3)
    randomize_affine(plain)
    filled = ResilientBatchNorm1d(C, warmup_batches=3, fill_masked=True)
    same_parameters(plain, filled)
    for x in batches(3):
        plain(x), filled(x)
    x = batches(1, seed=7)[0]
    x[:, 1] = (x[:, 1] - 1.0) * 10.0 + 1.0              # a 100x variance jump: masked
    out_plain, out_filled = plain(x), filled(x)
    assert filled.masked_updates.tolist() == [0, 1, 0, 0]
    torch.testing.assert_close(out_filled[:, 1], filled.bias.detach()[1].expand(len(x)))
    # without filling, the column goes through, scaled by its own (larger) spread
    scale = plain.weight[1] / torch.sqrt(x[:, 1].var() + plain.eps)
    expected = (x[:, 1] - plain.running_mean[1]) * scale + plain.bias[1]
    torch.testing.assert_close(out_plain[:, 1], expected)
    for column in (0, 2, 3):                             # the healthy columns are not touched
        torch.testing.assert_close(out_filled[:, column], out_plain[:, column])


def test_fill_masked_leaves_eval_alone():
    rbn = ResilientBatchNorm1d(C, warmup_batches=0, fill_masked=True)
    for x in batches(3):
        rbn(x)
    rbn.eval()
    x = batches(1, seed=7)[0]
    x[:, 1] = 4.0                                       # a request where a user feature is constant
    bn = nn.BatchNorm1d(C)
    same_parameters(rbn, bn)
    bn.eval()
    torch.testing.assert_close(rbn(x), bn(x), rtol=0, atol=0)
    assert not torch.allclose(rbn(x)[:, 1], rbn.bias[1].detach().expand(len(x)))


# ------------------------------------------------------------------ the outage the layer is for


def test_an_outage_collapses_batch_norms_running_variance_but_not_resilient_batch_norms():
    bn = nn.BatchNorm1d(C)
    rbn = ResilientBatchNorm1d(C, warmup_batches=20)
    healthy = batches(30, seed=0)
    for x in healthy:
        bn(x), rbn(x)
    var_before = rbn.running_var.clone()
    for x in batches(200, seed=1):
        x[:, 0] = 0.0                                  # the outage: column 0 filled with 0
        bn(x), rbn(x)
    assert bn.running_var[0] < 1e-6                    # 0.9 ** 200 of what it was
    assert rbn.running_var[0] == var_before[0]
    assert rbn.masked_updates.tolist() == [200, 0, 0, 0]

    bn.eval(), rbn.eval()
    back = torch.zeros(1, C) + torch.arange(C, dtype=torch.float32)
    back_bn = back.clone()
    back_bn[0, 0] = bn.running_mean[0] + 1.0            # one unit off the mean, once it is back
    out_bn = float(bn(back_bn)[0, 0].detach())
    assert out_bn == pytest.approx(1 / math.sqrt(bn.eps), rel=0.01)   # ~316
    back_rbn = back.clone()
    back_rbn[0, 0] = rbn.running_mean[0] + 1.0
    out_rbn = float(rbn(back_rbn)[0, 0].detach())
    assert out_rbn == pytest.approx(1 / math.sqrt(float(var_before[0]) + rbn.eps), rel=1e-4)
    assert 0.5 < out_rbn < 2.0


# ------------------------------------------------------------------ recovering from itself


def stream(scales: list[float], rows: int = 256, seed: int = 3) -> list[torch.Tensor]:
    """Standardized batches of one column, batch ``i`` with standard deviation ``scales[i]``."""
    generator = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(rows, 1, generator=generator) for scale in scales]


def run(layer: ResilientBatchNorm1d, data: list[torch.Tensor]) -> tuple[list, list]:
    """The running variance after each batch and each batch's largest |output|."""
    variances, largest = [], []
    for x in data:
        largest.append(float(layer(x).detach().abs().max()))
        variances.append(float(layer.running_var[0]))
    return variances, largest


SLOW_DRIFT = [1.0] * 150 + [0.95 ** (k / 2) for k in range(1, 111)] \
    + [0.95 ** 55] * 50 + [1.0] * 60
"""Healthy, then the variance shrinks 5% a batch for 110 batches (to 0.0035, each
step inside the shift test), holds there for 50, and the column is healthy again."""
FLAT_AT_WARM_UP_END = [1.0] * 50 + [math.sqrt(1e-3)] * 100 + [1.0] * 60
"""Near-constant (variance 1e-3, above minimal_variance) from batch 50 to 149, across
the end of a 100-batch warm-up, then healthy."""


@pytest.mark.parametrize("scales", [SLOW_DRIFT, FLAT_AT_WARM_UP_END],
                         ids=["slow drift", "near-constant across warm-up end"])
def test_the_statistics_recover_after_a_slow_outage_and_outputs_stay_bounded(scales):
    healthy_again = len(scales) - 60
    variances, largest = run(ResilientBatchNorm1d(1), stream(scales))
    assert variances[healthy_again - 1] < 0.02          # the outage did reach the statistics
    recovered = next(i for i in range(healthy_again, len(scales))
                     if 0.5 < variances[i] < 2.0)
    assert recovered - healthy_again < 50
    assert all(0.5 < var < 2.0 for var in variances[recovered:])
    assert max(largest) < 10


def test_the_write_ups_rule_alone_masks_a_recovered_column_for_ever():
    """accept_shift_after=None is the write-up's layer: the failure the two extra steps fix."""
    layer = ResilientBatchNorm1d(1, accept_shift_after=None)
    variances, _ = run(layer, stream(SLOW_DRIFT))
    assert variances[-1] < 0.02
    assert int(layer.masked_updates[0]) >= 60           # every healthy batch after it
    layer.eval()                                        # and serving reads it magnified
    assert float(layer(torch.ones(1, 1)).detach().abs().max()) > 5


def test_a_shift_that_holds_becomes_the_level_its_batches_average():
    layer = ResilientBatchNorm1d(2, warmup_batches=0, accept_shift_after=3)
    generator = torch.Generator().manual_seed(0)
    data = [torch.randn(128, 2, generator=generator) * torch.tensor([10.0, 1.0])
            + torch.tensor([2.0, 0.0]) for _ in range(3)]
    for x in data[:2]:
        layer(x)
    assert layer.masked_updates.tolist() == [2, 0]
    assert float(layer.running_var[0]) == 1.0          # two batches: still masked
    layer(data[2])
    torch.testing.assert_close(layer.running_var[0],
                               torch.stack([x[:, 0].var() for x in data]).mean())
    torch.testing.assert_close(layer.running_mean[0],
                               torch.stack([x[:, 0].mean() for x in data]).mean())
    assert layer.masked_updates.tolist() == [2, 0]      # the third batch updated


def test_a_shift_that_does_not_hold_one_level_is_never_accepted():
    layer = ResilientBatchNorm1d(1, warmup_batches=0, accept_shift_after=3)
    flapping = stream([10.0, 0.01] * 20)                # variance x100, then x1e-4
    run(layer, flapping)
    assert float(layer.running_var[0]) == 1.0
    assert int(layer.masked_updates[0]) == 40


def test_a_constant_column_is_never_accepted_however_long():
    layer = ResilientBatchNorm1d(1, warmup_batches=0, accept_shift_after=2)
    for _ in range(30):
        layer(torch.full((64, 1), 3.0))
    assert float(layer.running_var[0]) == 1.0 and int(layer.masked_updates[0]) == 30


# ------------------------------------------------------------------ arguments and shapes


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_features=0), "num_features"),
    (dict(num_features=-3), "num_features"),
    (dict(num_features=True), "num_features"),
    (dict(num_features=4.0), "num_features"),
    (dict(num_features=4, momentum=0), "momentum"),
    (dict(num_features=4, momentum=0.0), "momentum"),
    (dict(num_features=4, momentum=1.5), "momentum"),
    (dict(num_features=4, momentum=-0.1), "momentum"),
    (dict(num_features=4, momentum=None), "momentum"),
    (dict(num_features=4, minimal_variance=-1e-3), "minimal_variance"),
    (dict(num_features=4, minimal_variance=math.inf), "minimal_variance"),
    (dict(num_features=4, minimal_variance=math.nan), "minimal_variance"),
    (dict(num_features=4, variance_shift_threshold=1.0), "variance_shift_threshold"),
    (dict(num_features=4, variance_shift_threshold=0.5), "variance_shift_threshold"),
    (dict(num_features=4, variance_shift_threshold=math.nan), "variance_shift_threshold"),
    (dict(num_features=4, warmup_batches=-1), "warmup_batches"),
    (dict(num_features=4, warmup_batches=2.5), "warmup_batches"),
    (dict(num_features=4, warmup_batches=True), "warmup_batches"),
    (dict(num_features=4, eps=0.0), "eps"),
    (dict(num_features=4, eps=-1e-5), "eps"),
    (dict(num_features=4, eps=math.nan), "eps"),
    (dict(num_features=4, eps=math.inf), "eps"),
    (dict(num_features=4, eps=True), "eps"),
    (dict(num_features=4, eps="1e-5"), "eps"),
    (dict(num_features=4, momentum=True), "momentum"),
    (dict(num_features=4, momentum=math.nan), "momentum"),
    (dict(num_features=4, minimal_variance=True), "minimal_variance"),
    (dict(num_features=4, variance_shift_threshold=True), "variance_shift_threshold"),
    (dict(num_features=4, accept_shift_after=0), "accept_shift_after"),
    (dict(num_features=4, accept_shift_after=2.5), "accept_shift_after"),
    (dict(num_features=4, accept_shift_after=True), "accept_shift_after"),
    (dict(num_features=4, affine="yes"), "affine"),
    (dict(num_features=4, fill_masked=1), "fill_masked"),
])
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResilientBatchNorm1d(**kwargs)


def test_edge_hyperparameters_are_accepted():
    rbn = ResilientBatchNorm1d(2, momentum=1, minimal_variance=0, variance_shift_threshold=math.inf,
                               warmup_batches=0)
    x = batches(1, columns=2)[0]
    rbn(x)
    torch.testing.assert_close(rbn.running_var, x.var(dim=0))   # momentum 1: the last batch's
    assert "warmup_batches=0" in repr(rbn) and "fill_masked=False" in repr(rbn)


@pytest.mark.parametrize("shape", [(8, C + 1), (8, C, 3), (C,)])
@pytest.mark.parametrize("training", [True, False])
def test_wrong_input_shape_raises(shape, training):
    rbn = ResilientBatchNorm1d(C)
    rbn.train(training)
    with pytest.raises(ValueError, match="shape"):
        rbn(torch.randn(*shape))


def test_one_row_training_batch_raises_and_touches_nothing():
    rbn = ResilientBatchNorm1d(C)
    with pytest.raises(ValueError, match="2 rows"):
        rbn(torch.randn(1, C))
    assert int(rbn.num_batches_tracked) == 0 and torch.equal(rbn.running_var, torch.ones(C))


# ------------------------------------------------------------------ in models


def test_dense_input_and_models_accept_resilient():
    dense = DenseInput(C, "resilient")
    assert type(dense.norm) is ResilientBatchNorm1d and dense.norm.num_features == C
    model = DCNv2(CARDINALITIES, n_dense=C, embedding_dim=4, cross_layers=1, hidden=(8,),
                  dense_normalization="resilient")
    assert isinstance(model.input.dense_input.norm, ResilientBatchNorm1d)
    out = model(make_batch(16, C))["click"]
    assert out.shape == (16,) and torch.isfinite(out).all()
    assert int(model.input.dense_input.norm.num_batches_tracked) == 1


def test_make_resilient_keeps_the_statistics_and_the_eval_predictions_exactly():
    torch.manual_seed(0)
    model = DCNv2(CARDINALITIES, n_dense=C, embedding_dim=4, cross_layers=2, hidden=(16, 8),
                  dense_normalization="batch")
    model.train()
    for seed in range(4):                                 # move the running statistics off their start
        batch = make_batch(32, C)
        batch["dense"] = batches(1, rows=32, seed=seed)[0] * 3.0
        model(batch)
    old = model.input.dense_input.norm
    randomize_affine(old)
    state = {key: value.clone() for key, value in old.state_dict().items()}
    model.eval()
    batch = make_batch(32, C)
    before = model(batch)["click"]

    returned = make_resilient(model, warmup_batches=7, minimal_variance=1e-3)
    assert returned is model
    new = model.input.dense_input.norm
    assert type(new) is ResilientBatchNorm1d and new is not old
    assert new.warmup_batches == 7 and new.minimal_variance == 1e-3
    assert new.eps == old.eps and new.momentum == old.momentum
    assert not new.training                                # the model's mode is kept
    for key, value in state.items():
        assert torch.equal(new.state_dict()[key], value), key
    assert torch.equal(model(batch)["click"], before)
    assert not any(type(module) is nn.BatchNorm1d for module in model.modules())
    # the model still trains, through the new layer
    model.train()
    model(batch)["click"].sum().backward()
    assert new.weight.grad is not None and int(new.num_batches_tracked) == 5


def test_make_resilient_reaches_nested_layers_and_leaves_resilient_ones_alone():
    already = ResilientBatchNorm1d(3, warmup_batches=1)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, eps=1e-3),
                          nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3, momentum=0.3)), already,
                          nn.LayerNorm(3))
    make_resilient(model, warmup_batches=4)
    assert type(model[1]) is ResilientBatchNorm1d and model[1].eps == 1e-3
    assert type(model[2][1]) is ResilientBatchNorm1d and model[2][1].momentum == 0.3
    assert model[3] is already and already.warmup_batches == 1
    assert type(model[4]) is nn.LayerNorm
    assert model(torch.randn(8, 2)).shape == (8, 3)


def test_a_column_with_nan_is_masked_and_keeps_its_statistics():
    norm = ResilientBatchNorm1d(3, warmup_batches=0)
    norm.train()
    healthy = torch.randn(64, 3)
    norm(healthy)
    before_mean, before_var = norm.running_mean.clone(), norm.running_var.clone()
    broken = torch.randn(64, 3)
    broken[5, 1] = float("nan")
    norm(broken)
    assert torch.isfinite(norm.running_mean).all() and torch.isfinite(norm.running_var).all()
    assert norm.running_var[1] == before_var[1] and norm.running_mean[1] == before_mean[1]
    assert norm.running_var[0] != before_var[0]


def test_make_resilient_refuses_a_cumulative_batch_norm():
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3, momentum=None))
    with pytest.raises(ValueError, match="momentum"):
        make_resilient(model)
