"""16-bit inference and training: the formats, the cast copy, where fp16 overflows, keeping
a part in float32, and what ``fit(precision="fp16")`` records about its loss scaler.

Small handmade models with known weights make the overflow land on a known module;
a DCN V2 on standardized inputs checks that 16 bits agree with 32 when nothing is large.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ranking.nn import DCNv2, LogisticRegression
from ranking.nn import CrossNetV2
from ranking.precision import (DTYPES, PRECISION_MODES, CastModel, Float32, activation_report,
                               agreement, cross_layer_report, dtype_table, keep_in_fp32, predict_in,
                               run_in)
from ranking.train import fit, predict
from tiny_batch import CARDINALITIES, make_batch

torch.set_num_threads(1)

N_DENSE = 4


def dcn(seed: int = 0, **kwargs) -> DCNv2:
    torch.manual_seed(seed)
    options = dict(embedding_dim=4, cross_layers=2, hidden=(16, 8))
    return DCNv2(CARDINALITIES, n_dense=N_DENSE, **{**options, **kwargs})


class Chain(nn.Module):
    """dense -> first (x 1000) -> ReLU -> second (sum) -> the click logit.

    ``second`` is defined before ``first`` so that definition order and call order differ.
    """

    def __init__(self):
        super().__init__()
        self.second = nn.Linear(2, 1)
        self.first = nn.Linear(2, 2)
        self.act = nn.ReLU()
        with torch.no_grad():
            self.first.weight.copy_(1000.0 * torch.eye(2))
            self.first.bias.zero_()
            self.second.weight.fill_(1.0)
            self.second.bias.zero_()

    def forward(self, batch):
        h = self.act(self.first(batch["dense"]))
        return {"click": self.second(h).squeeze(-1)}


class Spy(nn.Module):
    """Records the dtype of every input it is given, and returns a logit in its own dtype."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(N_DENSE, 1)
        self.seen: dict[str, torch.dtype] = {}

    def forward(self, batch):
        self.seen = {key: value.dtype for key, value in batch.items()}
        return {"click": self.linear(batch["dense"]).squeeze(-1)}


def standardized_batch(rows: int = 256) -> dict[str, torch.Tensor]:
    batch = make_batch(rows, N_DENSE)
    batch["label_click"] = (torch.rand(rows, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    return batch


# ------------------------------------------------------------------ the formats


def test_dtype_table_holds_each_formats_limits():
    table = dtype_table()
    assert list(table.index) == ["fp32", "bf16", "fp16"]
    assert table.index.name == "format"
    assert table.loc["fp16", "largest"] == 65504
    assert table.loc["bf16", "largest"] == pytest.approx(3.3895e38, rel=1e-4)
    assert table.loc["fp32", "largest"] == pytest.approx(3.4028e38, rel=1e-4)
    assert table.loc["bf16", "epsilon"] == 2.0 ** -7
    assert table.loc["fp16", "epsilon"] == 2.0 ** -10
    assert table.loc["fp32", "epsilon"] == 2.0 ** -23
    assert table.loc["fp16", "smallest normal"] == 2.0 ** -14
    assert table.loc["bf16", "smallest normal"] == table.loc["fp32", "smallest normal"] == 2.0 ** -126
    assert table["bits"].tolist() == [32, 16, 16]
    assert table["exponent bits"].tolist() == [8, 8, 5]
    assert table["mantissa bits"].tolist() == [23, 7, 10]
    # sign + exponent + mantissa is every bit
    assert (1 + table["exponent bits"] + table["mantissa bits"] == table["bits"]).all()


def test_dtype_table_decimal_digits_counts_digits():
    """A count of significant decimal digits (6, 2, 3), not torch.finfo().resolution (1e-6, 0.01, 0.001)."""
    table = dtype_table()
    assert table["decimal digits"].tolist() == [6, 2, 3]


def test_dtypes_and_modes():
    assert DTYPES == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert PRECISION_MODES == ("fp32", "bf16", "fp16", "bf16 weights", "fp16 weights")


# ------------------------------------------------------------------ CastModel and run_in


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cast_model_copies_casts_and_returns_float32(dtype):
    model = dcn(dense_normalization="batch")
    original = {key: value.clone() for key, value in model.state_dict().items()}
    cast = CastModel(model, dtype)
    assert all(p.dtype == torch.float32 for p in model.parameters())      # the original is untouched
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())
    assert all(p.dtype == dtype for p in cast.parameters())
    assert cast.model.input.dense_input.norm.running_var.dtype == dtype
    assert cast.model is not model
    cast.eval()
    out = cast(make_batch(16, N_DENSE))
    assert set(out) == {"click"}
    assert out["click"].dtype == torch.float32 and out["click"].shape == (16,)
    for key, value in model.state_dict().items():
        assert torch.equal(value, original[key]), key
    # a cast copy scores close to the float32 model
    model.eval()
    torch.testing.assert_close(out["click"], model(make_batch(16, N_DENSE))["click"], atol=0.05, rtol=0)


def test_cast_model_casts_float_inputs_and_leaves_ids_and_labels():
    spy = Spy()
    cast = CastModel(spy, torch.float16)
    batch = standardized_batch(8)
    logit = cast(batch)["click"]
    seen = cast.model.seen
    assert seen["dense"] == torch.float16
    assert seen["user_id"] == seen["surface"] == seen["is_video"] == torch.int64
    assert seen["label_click"] == torch.float32
    assert logit.dtype == torch.float32
    assert spy.seen == {}                                   # the original never ran
    assert batch["dense"].dtype == torch.float32            # the caller's batch is not changed


def test_cast_model_refuses_other_dtypes():
    with pytest.raises(ValueError, match="dtype"):
        CastModel(Spy(), torch.float64)
    with pytest.raises(ValueError, match="dtype"):
        CastModel(Spy(), torch.int8)


def test_run_in_autocast_yields_the_model_and_weights_yield_a_cast_copy():
    model = dcn()
    model.eval()
    batch = make_batch(8, N_DENSE)
    with run_in(model, "fp16") as runnable:
        assert runnable is model
        assert runnable(batch)["click"].dtype == torch.float16      # the head ran in fp16
    with run_in(model, "bf16") as runnable:
        assert runnable(batch)["click"].dtype == torch.bfloat16
    with run_in(model, "fp32") as runnable:
        assert runnable is model and runnable(batch)["click"].dtype == torch.float32
    with run_in(model, "bf16 weights") as runnable:
        assert isinstance(runnable, CastModel) and runnable.dtype == torch.bfloat16
        assert runnable(batch)["click"].dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model(batch)["click"].dtype == torch.float32             # autocast is off again


@pytest.mark.parametrize("call", [
    lambda model, batch: run_in(model, "fp8").__enter__(),
    lambda model, batch: predict_in(model, batch, "float16"),
    lambda model, batch: activation_report(model, batch, "fp16 activations"),
    lambda model, batch: cross_layer_report(model, batch, "bf16 weight"),
])
def test_unknown_modes_raise(call):
    with pytest.raises(ValueError, match="mode"):
        call(dcn(), make_batch(8, N_DENSE))


# ------------------------------------------------------------------ predict_in


@pytest.mark.parametrize("mode, tolerance", [
    ("fp32", 1e-6), ("bf16", 1e-2), ("fp16", 1e-3), ("bf16 weights", 1e-2), ("fp16 weights", 1e-3),
])
def test_predict_in_agrees_with_fp32_on_standardized_inputs(mode, tolerance):
    model = dcn(dense_normalization="batch")
    with torch.no_grad():
        model.heads["click"].weight.mul_(5.0)                     # probabilities from 0.5 to 0.9
    batch = standardized_batch()
    model.train()
    model(batch)                                                   # running statistics off their start
    reference = predict(model, batch, device="cpu")["click"]
    probabilities = predict_in(model, batch, mode, device="cpu", batch_size=100)["click"]
    assert probabilities.shape == (256,) and probabilities.dtype == np.float32
    assert np.isfinite(probabilities).all()
    assert ((probabilities > 0) & (probabilities < 1)).all()
    np.testing.assert_allclose(probabilities, reference, atol=tolerance, rtol=0)
    assert reference.std() > 0.03                        # not a constant the modes agree on trivially
    assert np.corrcoef(probabilities, reference)[0, 1] > 0.9999
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.training                                          # predict_in restores the mode


def test_predict_in_weight_modes_round_like_their_format():
    """bf16 weights keep 8 bits of mantissa, fp16 11: fp16 lands closer to fp32."""
    model = dcn()
    batch = standardized_batch()
    reference = predict(model, batch, device="cpu")["click"]
    bf16 = np.abs(predict_in(model, batch, "bf16 weights", device="cpu")["click"] - reference).max()
    fp16 = np.abs(predict_in(model, batch, "fp16 weights", device="cpu")["click"] - reference).max()
    assert 0 < fp16 < bf16


def large_dense_batch(rows: int = 32) -> dict[str, torch.Tensor]:
    batch = make_batch(rows, N_DENSE)
    batch["dense"] = batch["dense"].abs() * 1e5 + 1e5                 # raw counts, never standardized
    return batch


@pytest.mark.parametrize("fp16_mode, bf16_mode", [("fp16", "bf16"), ("fp16 weights", "bf16 weights")])
def test_large_inputs_overflow_fp16_but_not_bf16(fp16_mode, bf16_mode):
    model = dcn()
    batch = large_dense_batch()
    fp32 = predict_in(model, batch, "fp32", device="cpu")["click"]
    fp16 = predict_in(model, batch, fp16_mode, device="cpu")["click"]
    bf16 = predict_in(model, batch, bf16_mode, device="cpu")["click"]
    assert np.isfinite(fp32).all()
    assert (~np.isfinite(fp16)).mean() > 0.5
    assert np.isfinite(bf16).all()


def test_autocast_keeps_batch_norm_in_float32_but_cast_weights_do_not():
    """Raw values of 1e5 normalized by Batch Norm: autocast normalizes them in float32 first,
    a cast copy turns them into inf before anything runs."""
    model = dcn(dense_normalization="batch")
    batch = large_dense_batch()
    norm = model.input.dense_input.norm
    with torch.no_grad():                                         # statistics of the raw values
        norm.running_mean.copy_(batch["dense"].mean(dim=0))
        norm.running_var.copy_(batch["dense"].var(dim=0))
    fp32 = predict_in(model, batch, "fp32", device="cpu")["click"]
    autocast = predict_in(model, batch, "fp16", device="cpu")["click"]
    weights = predict_in(model, batch, "fp16 weights", device="cpu")["click"]
    assert np.isfinite(fp32).all()
    np.testing.assert_allclose(autocast, fp32, atol=1e-3, rtol=0)
    assert (~np.isfinite(weights)).all()
    assert agreement(fp32, weights)["non_finite"] == 1.0


# ------------------------------------------------------------------ activation_report


def test_activation_report_lists_leaf_modules_in_call_order():
    model = dcn()
    report = activation_report(model, make_batch(8, N_DENSE), "fp16")
    assert list(report.columns) == ["module", "kind", "dtype", "largest", "non_finite", "first_non_finite"]
    assert report["module"].tolist() == [
        "input.embedding.tables.user_id", "input.embedding.tables.surface",
        "input.embedding.tables.is_video", "input.dense_input.norm",
        "cross.layers.0", "cross.layers.1",
        "mlp.layers.0", "mlp.layers.1", "mlp.layers.2", "mlp.layers.3", "heads.click"]
    linear = report["kind"] == "Linear"
    assert linear.sum() == 5
    assert (report.loc[linear, "dtype"] == "float16").all()
    assert (report.loc[report["kind"] == "Embedding", "dtype"] == "float32").all()
    assert (report["non_finite"] == 0).all() and not report["first_non_finite"].any()
    assert (report["largest"] > 0).all()
    fp32 = activation_report(model, make_batch(8, N_DENSE), "fp32")
    assert (fp32["dtype"] == "float32").all()
    assert fp32["module"].tolist() == report["module"].tolist()


def test_activation_report_call_order_and_values_on_a_handmade_chain():
    batch = {"dense": torch.tensor([[100.0, -2.0], [1.0, 1.0]])}
    fp32 = activation_report(Chain(), batch, "fp32")
    assert fp32["module"].tolist() == ["first", "act", "second"]
    assert fp32["kind"].tolist() == ["Linear", "ReLU", "Linear"]
    # first: [[1e5, -2000], [1000, 1000]]; ReLU: [[1e5, 0], [1000, 1000]]; second: [1e5, 2000]
    assert fp32["largest"].tolist() == [1e5, 1e5, 1e5]
    assert (fp32["non_finite"] == 0).all() and not fp32["first_non_finite"].any()


@pytest.mark.parametrize("mode", ["fp16", "fp16 weights"])
def test_activation_report_flags_the_first_overflowing_module(mode):
    batch = {"dense": torch.tensor([[100.0, -2.0], [1.0, 1.0]])}
    model = Chain()
    report = activation_report(model, batch, mode)
    assert report["module"].tolist() == ["first", "act", "second"]   # no "model." prefix in weight modes
    assert (report["dtype"] == "float16").all()
    first = report.set_index("module").loc["first"]
    assert first["non_finite"] == 0.25                               # 1e5 > 65504: one value of four
    assert first["largest"] == 2000.0                                # the largest finite one
    assert report["first_non_finite"].tolist() == [True, False, False]
    assert (report["non_finite"] > 0).tolist() == [True, True, True]  # and it travels on
    assert all(p.dtype == torch.float32 for p in model.parameters())
    bf16 = activation_report(model, batch, mode.replace("fp16", "bf16"))
    assert (bf16["non_finite"] == 0).all() and not bf16["first_non_finite"].any()


def test_activation_report_restores_training_mode():
    model = dcn(dense_normalization="batch")
    model.train()
    before = model.input.dense_input.norm.running_mean.clone()
    activation_report(model, make_batch(8, N_DENSE), "bf16")
    assert model.training
    assert torch.equal(model.input.dense_input.norm.running_mean, before)   # ran in eval mode


def test_activation_report_on_a_dcn_with_large_inputs_starts_at_the_cross_network():
    report = activation_report(dcn(), large_dense_batch(), "fp16")
    flagged = report.loc[report["first_non_finite"], "module"].tolist()
    assert flagged == ["cross.layers.0"]
    before = report.index[report["module"] == "cross.layers.0"][0]
    assert (report.loc[: before - 1, "non_finite"] == 0).all()


# ------------------------------------------------------------------ cross_layer_report


def test_cross_layer_report_starts_at_the_input_and_ends_at_the_cross_output():
    model = dcn(cross_layers=3)
    model.eval()
    batch = make_batch(16, N_DENSE)
    report = cross_layer_report(model, batch)
    assert report.index.tolist() == [0, 1, 2, 3] and report.index.name == "layer"
    assert list(report.columns) == ["largest", "rows_non_finite", "dtype"]
    with torch.no_grad():
        x0 = model.input(batch)
        layers = [x0]
        for linear in model.cross.layers:
            layers.append(x0 * linear(layers[-1]) + layers[-1])
        crossed = model.cross(x0)
    torch.testing.assert_close(layers[-1], crossed)
    assert report.loc[0, "largest"] == pytest.approx(float(x0.abs().max()), rel=1e-6)
    assert report.loc[3, "largest"] == pytest.approx(float(crossed.abs().max()), rel=1e-6)
    for index, layer in enumerate(layers):
        assert report.loc[index, "largest"] == pytest.approx(float(layer.abs().max()), rel=1e-6)
    assert (report["rows_non_finite"] == 0).all() and (report["dtype"] == "float32").all()


def test_cross_layer_report_shows_fp16_overflow_and_bf16_growth():
    """Inputs near 1000 fit in fp16; the cross layers multiply by them once per layer."""
    model = dcn(cross_layers=2)
    batch = make_batch(32, N_DENSE)
    batch["dense"] = batch["dense"].abs() * 1000.0 + 1000.0
    fp16 = cross_layer_report(model, batch, "fp16 weights")
    assert (fp16["dtype"] == "float16").all()
    assert fp16["rows_non_finite"].tolist() == [0.0, 1.0, 1.0]
    assert 2000 < fp16.loc[0, "largest"] < 65504
    # autocast keeps x0 and the sums in float32: only the second layer's linear map overflows
    autocast = cross_layer_report(model, batch, "fp16")
    assert (autocast["dtype"] == "float32").all()
    assert autocast["rows_non_finite"].tolist() == [0.0, 0.0, 1.0]
    assert autocast.loc[1, "largest"] > 65504
    bf16 = cross_layer_report(model, batch, "bf16 weights")
    assert (bf16["dtype"] == "bfloat16").all() and (bf16["rows_non_finite"] == 0).all()
    assert bf16.loc[0, "largest"] < bf16.loc[1, "largest"] < bf16.loc[2, "largest"]
    assert bf16.loc[2, "largest"] > 1e8                      # far past what fp16 can hold
    fp32 = cross_layer_report(model, batch, "fp32")
    np.testing.assert_allclose(bf16["largest"], fp32["largest"], rtol=0.05)


def test_cross_layer_report_needs_a_cross_network():
    model = LogisticRegression(CARDINALITIES, N_DENSE)
    with pytest.raises(TypeError, match="CrossNetV2"):
        cross_layer_report(model, make_batch(8, N_DENSE))


# ------------------------------------------------------------------ keep_in_fp32


def test_keep_in_fp32_copies_and_wraps_the_named_submodules():
    model = dcn()
    kept = keep_in_fp32(model, "cross", "mlp.layers.0")
    assert type(model.cross) is CrossNetV2 and type(model.mlp.layers[0]) is nn.Linear   # original untouched
    assert isinstance(kept.cross, Float32) and type(kept.cross.module) is CrossNetV2
    assert isinstance(kept.mlp.layers[0], Float32)
    assert kept.cross.module.layers[0].weight is not model.cross.layers[0].weight
    batch = make_batch(16, N_DENSE)
    np.testing.assert_array_equal(predict_in(kept, batch, "fp32", device="cpu")["click"],
                                  predict_in(model, batch, "fp32", device="cpu")["click"])
    with pytest.raises(AttributeError):
        keep_in_fp32(model, "no_such_layer")


def test_keep_in_fp32_runs_the_named_part_in_float32_and_moves_the_overflow_past_it():
    model = dcn()
    batch = make_batch(32, N_DENSE)
    batch["dense"] = batch["dense"].abs() * 300.0 + 300.0            # fits fp16; its crosses do not
    plain = activation_report(model, batch, "fp16").set_index("module")
    kept = activation_report(keep_in_fp32(model, "cross"), batch, "fp16").set_index("module")
    assert plain.index[plain["first_non_finite"]].tolist() == ["cross.layers.1"]
    assert kept.loc[["cross.module.layers.0", "cross.module.layers.1"], "dtype"].tolist() == ["float32"] * 2
    assert (kept.loc[["cross.module.layers.0", "cross.module.layers.1"], "non_finite"] == 0).all()
    assert kept.loc["cross.module.layers.1", "largest"] > 65504 * 0.9   # held in float32
    assert kept.loc["mlp.layers.0", "dtype"] == "float16"              # the rest still in 16 bits
    assert kept.index[kept["first_non_finite"]].tolist() == ["mlp.layers.0"]


def test_float32_wrapper_casts_up_and_turns_autocast_off():
    linear = nn.Linear(2, 2)
    wrapped = Float32(linear)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float16)
    assert wrapped(x).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.float16):
        assert linear(x.float()).dtype == torch.float16
        out = wrapped(x.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, linear(x.float()))


# ------------------------------------------------------------------ agreement


def test_agreement_on_handmade_arrays():
    reference = np.array([0.1, 0.2, 0.3, 0.4])
    result = agreement(reference, np.array([0.1, 0.25, np.nan, np.inf]))
    assert result["non_finite"] == 0.5
    assert result["max_abs_diff"] == pytest.approx(0.05)
    assert result["mean_abs_diff"] == pytest.approx(0.025)
    same = agreement(reference, reference.astype(np.float32))
    assert same["non_finite"] == 0.0 and same["max_abs_diff"] < 1e-7
    assert agreement([0.5, 0.5], [0.4, 0.7]) == pytest.approx(
        {"non_finite": 0.0, "max_abs_diff": 0.2, "mean_abs_diff": 0.15})


def test_agreement_with_nothing_finite():
    result = agreement(np.array([0.1, 0.2]), np.array([np.nan, -np.inf]))
    assert result["non_finite"] == 1.0
    assert math.isnan(result["max_abs_diff"]) and math.isnan(result["mean_abs_diff"])


def test_agreement_refuses_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        agreement(np.zeros(3), np.zeros(4))


# ------------------------------------------------------------------ fit in fp16: the loss scaler


def tiny_train(rows: int = 512, scale: float = 1.0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    data = {name: torch.randint(0, size, (rows,), generator=generator) for name, size in CARDINALITIES.items()}
    data["dense"] = torch.randn(rows, N_DENSE, generator=generator) * scale
    data["label_click"] = torch.bernoulli(torch.full((rows,), 0.3), generator=generator)
    return data


def fit_lr(data, precision, **kwargs):
    torch.manual_seed(0)
    model = LogisticRegression(CARDINALITIES, N_DENSE)
    options = dict(epochs=2, batch_size=128, lr=0.01, progress=False, device="cpu", precision=precision)
    return fit(model, data, **{**options, **kwargs})


def test_fit_fp16_history_records_the_loss_scaler():
    result = fit_lr(tiny_train(), "fp16")
    history = result.history
    assert {"loss_scale", "skipped_steps"} <= set(history.columns)
    assert len(history) == 2
    assert (history["skipped_steps"] == 0).all()                 # healthy data: no step skipped
    assert (history["loss_scale"] == 2.0 ** 16).all()             # GradScaler's start, no backoff
    assert np.isfinite(history["train_loss"]).all()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fit_without_fp16_has_no_scaler_columns(precision):
    history = fit_lr(tiny_train(), precision).history
    assert "loss_scale" not in history.columns and "skipped_steps" not in history.columns


def test_fit_fp16_counts_the_steps_skipped_for_an_overflowing_loss():
    data = tiny_train(scale=1e5)                                  # 1e5 is inf in fp16
    torch.manual_seed(0)
    model = LogisticRegression(CARDINALITIES, N_DENSE)
    start = {key: value.clone() for key, value in model.state_dict().items()}
    result = fit(model, data, epochs=2, batch_size=128, lr=0.01, progress=False, device="cpu",
                 precision="fp16")
    history = result.history
    assert history["skipped_steps"].tolist() == [4, 4]             # 512 rows / 128: every step
    # each skipped step halves the scale: 2**16 -> 2**12 -> 2**8
    assert history["loss_scale"].tolist() == [2.0 ** 12, 2.0 ** 8]
    for key, value in model.state_dict().items():                 # nothing was applied
        assert torch.equal(value, start[key]), key
    # fp32 trains on the same data without skipping anything
    fp32 = fit_lr(data, "fp32")
    assert "skipped_steps" not in fp32.history.columns
    assert np.isfinite(fp32.history["train_loss"]).all()


def test_fit_fp16_counts_only_the_overflowing_steps():
    data = tiny_train()
    data["dense"][17] = 1e5                       # one row of 512 overflows: one batch an epoch
    result = fit_lr(data, "fp16", epochs=3)
    history = result.history
    assert history["skipped_steps"].tolist() == [1, 1, 1]
    assert history["loss_scale"].tolist() == [2.0 ** 15, 2.0 ** 14, 2.0 ** 13]
    # the other three steps of each epoch were applied: the weights moved and stayed finite
    torch.manual_seed(0)
    start = LogisticRegression(CARDINALITIES, N_DENSE).state_dict()
    weights = result.model.state_dict()
    assert all(torch.isfinite(value).all() for value in weights.values())
    assert not torch.equal(weights["dense_weights.weight"], start["dense_weights.weight"])


def test_fit_fp16_reports_an_overflowed_loss_as_non_finite():
    """An overflowed loss is NaN in the history, never 0.0 (which early stopping would take as the best)."""
    data = tiny_train(scale=1e5)
    history = fit_lr(data, "fp16", epochs=1, valid=data).history
    assert math.isnan(history.loc[0, "train_loss_click"])
    assert not history.loc[0, "train_loss"] == 0.0 and not math.isfinite(history.loc[0, "train_loss"])
    assert not math.isfinite(history.loc[0, "valid_loss"])
    assert math.isnan(history.loc[0, "valid_monitor"])
