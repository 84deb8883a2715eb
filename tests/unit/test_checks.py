"""The shared argument checks: what they accept, what they refuse, and that they name the field."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ranking import checks

NOT_INTEGERS = [True, False, np.bool_(True), 3.0, np.float64(3.0), np.float32(1.0), "3", None]


# ------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", [0, 7, np.int8(3), np.int64(2**40), np.uint16(5)])
def test_numpy_integers_are_integers(value):
    assert checks.is_integer(value)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_bools_floats_and_strings_are_not_integers(value):
    assert not checks.is_integer(value)


@pytest.mark.parametrize("value", [np.int32(4), np.int64(4), np.uint8(4), 4])
def test_positive_int_accepts_numpy_integers_and_returns_a_python_int(value):
    result = checks.positive_int("epochs", value)
    assert result == 4 and type(result) is int


@pytest.mark.parametrize("value", [np.int64(0), 0, np.uint8(0)])
def test_nonnegative_int_accepts_zero_of_any_integer_type(value):
    result = checks.nonnegative_int("sequence_length", value)
    assert result == 0 and type(result) is int


@pytest.mark.parametrize("value", NOT_INTEGERS + [0, -1, np.int64(-3)])
def test_positive_int_refuses_non_integers_and_non_positive_naming_the_field(value):
    with pytest.raises(ValueError, match="epochs"):
        checks.positive_int("epochs", value)


@pytest.mark.parametrize("value", NOT_INTEGERS + [-1, np.int16(-1)])
def test_nonnegative_int_refuses_non_integers_and_negatives_naming_the_field(value):
    with pytest.raises(ValueError, match="sequence_length"):
        checks.nonnegative_int("sequence_length", value)


@pytest.mark.parametrize("value, expected", [
    (0, 0.0), (2, 2.0), (0.25, 0.25), (np.float32(0.5), 0.5), (np.int64(3), 3.0)])
def test_nonnegative_number_accepts_finite_non_negative_numbers(value, expected):
    result = checks.nonnegative_number("task_weights['click']", value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [
    -1, -1e-9, math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf"),
    True, False, np.bool_(True), "1", None, torch.tensor(1.0)])
def test_nonnegative_number_refuses_negative_nan_inf_bool_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"task_weights\['click'\]"):
        checks.nonnegative_number("task_weights['click']", value)


def test_one_of_names_the_field_and_the_allowed_values():
    checks.one_of("precision", "bf16", ("fp32", "bf16"))
    with pytest.raises(ValueError, match=r"precision.*fp32.*bf16.*fp8"):
        checks.one_of("precision", "fp8", ("fp32", "bf16"))


# ---------------------------------------------------------------- task names
def test_one_task_name_alone_is_one_task():
    assert checks.task_names("click") == ("click",)
    assert checks.task_names(["click", "save"]) == ("click", "save")


@pytest.mark.parametrize("tasks", [(), [], ("click", "click"), ("",), ("click", 3), ""])
def test_task_names_refuses_empty_duplicate_and_non_string_names(tasks):
    with pytest.raises(ValueError, match="tasks"):
        checks.task_names(tasks)


def test_known_tasks_names_the_argument_and_the_unknown_task():
    checks.known_tasks("task_weights", {"click": 1.0}, ("click", "save"))
    with pytest.raises(ValueError, match=r"task_weights.*'hide'"):
        checks.known_tasks("task_weights", {"hide": 1.0}, ("click", "save"))


# -------------------------------------------------------------- tensor dicts
def test_num_rows_is_the_shared_first_dimension():
    data = {"user_id": torch.zeros(5, dtype=torch.long), "dense": torch.zeros(5, 3)}
    assert checks.num_rows(data) == 5


def test_num_rows_refuses_an_empty_dict_naming_it():
    with pytest.raises(ValueError, match="train is empty"):
        checks.num_rows({}, "train")


def test_num_rows_refuses_a_zero_dimensional_tensor_naming_the_key():
    data = {"dense": torch.zeros(4, 2), "label_click": torch.tensor(1.0)}
    with pytest.raises(ValueError, match=r"valid\['label_click'\]"):
        checks.num_rows(data, "valid")


def test_num_rows_refuses_a_value_that_is_not_a_tensor_naming_the_key():
    data = {"dense": torch.zeros(4, 2), "user_id": np.zeros(4, dtype=np.int64)}
    with pytest.raises(ValueError, match=r"train\['user_id'\]"):
        checks.num_rows(data, "train")


def test_num_rows_refuses_ragged_tensors_listing_the_sizes():
    data = {"dense": torch.zeros(4, 2), "label_click": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"train.*disagree.*'label_click': 3"):
        checks.num_rows(data, "train")


def test_num_rows_refuses_zero_rows():
    data = {"dense": torch.zeros(0, 2), "label_click": torch.zeros(0)}
    with pytest.raises(ValueError, match="valid has no rows"):
        checks.num_rows(data, "valid")


def test_finite_inputs_skips_labels_even_with_nan():
    data = {"dense": torch.zeros(3, 2), "label_click": torch.tensor([0.0, math.nan, 1.0]),
            "user_id": torch.tensor([0, 1, 2])}
    checks.finite_inputs(data, "train")


@pytest.mark.parametrize("key, bad", [("dense", math.inf), ("dense", -math.inf),
                                      ("dense", math.nan), ("oracle_click", math.nan),
                                      ("teacher_click", math.inf), ("hours_observed", math.nan)])
def test_finite_inputs_catches_nan_and_inf_in_any_other_float_tensor(key, bad):
    data = {"dense": torch.zeros(3, 2), "label_click": torch.zeros(3),
            "oracle_click": torch.zeros(3), "teacher_click": torch.zeros(3),
            "hours_observed": torch.ones(3)}
    data[key] = data[key].clone()
    data[key].view(-1)[1] = bad
    with pytest.raises(ValueError, match=rf"train\['{key}'\].*\(1 of {data[key].numel()}\)"):
        checks.finite_inputs(data, "train")


def test_task_labels_refuses_missing_integer_nan_and_out_of_range_labels():
    checks.task_labels({"label_click": torch.tensor([0.0, 1.0])}, "train", "click")
    with pytest.raises(ValueError, match="train has no 'label_click'"):
        checks.task_labels({"label_save": torch.zeros(2)}, "train", "click")
    with pytest.raises(ValueError, match="float"):
        checks.task_labels({"label_click": torch.tensor([0, 1])}, "train", "click")
    with pytest.raises(ValueError, match="NaN"):
        checks.task_labels({"label_click": torch.tensor([0.0, math.nan])}, "train", "click")
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        checks.task_labels({"label_click": torch.tensor([0.0, 2.0])}, "train", "click")


# ------------------------------------------------------------------- arrays
def test_as_probabilities_reads_a_tensor_that_requires_grad():
    values = torch.tensor([0.1, 0.5, 0.9], requires_grad=True)
    array = checks.as_probabilities(values, "probs")
    assert array.dtype == np.float64
    np.testing.assert_allclose(array, [0.1, 0.5, 0.9], rtol=1e-6)


def test_as_probabilities_reads_a_bfloat16_tensor():
    array = checks.as_probabilities(torch.tensor([0.25, 0.75], dtype=torch.bfloat16), "probs")
    np.testing.assert_array_equal(array, [0.25, 0.75])


def test_as_probabilities_reads_a_series_by_position_not_by_index():
    series = pd.Series([0.2, 0.4, 0.6], index=[10, 3, 7])
    np.testing.assert_array_equal(checks.as_probabilities(series, "probs"), [0.2, 0.4, 0.6])


def test_as_probabilities_reads_a_list():
    array = checks.as_probabilities([0, 1, 0.5], "probs")
    assert array.dtype == np.float64 and array.tolist() == [0.0, 1.0, 0.5]


@pytest.mark.parametrize("values", [
    [0.1, math.nan], np.array([math.nan]), torch.tensor([0.5, math.nan]),
    pd.Series([0.3, None], dtype="float64")])
def test_as_probabilities_refuses_nan_naming_the_field(values):
    with pytest.raises(ValueError, match="scores contains NaN"):
        checks.as_probabilities(values, "scores")


@pytest.mark.parametrize("values", [[0.5, 1.01], [-0.01, 0.5], [math.inf], [-math.inf, 0.2],
                                    torch.tensor([2.0])])
def test_as_probabilities_refuses_values_outside_0_1_naming_the_field(values):
    with pytest.raises(ValueError, match=r"scores must lie in \[0, 1\]"):
        checks.as_probabilities(values, "scores")


@pytest.mark.parametrize("values, match", [([], "must not be empty"),
                                           ([[0.1, 0.2]], "must be 1-d"),
                                           (torch.zeros(2, 2), "must be 1-d")])
def test_as_array_refuses_empty_and_2d_input_naming_the_field(values, match):
    with pytest.raises(ValueError, match=f"scores {match}"):
        checks.as_array(values, "scores")


def test_labels_and_probabilities_returns_float64_arrays():
    y, p = checks.labels_and_probabilities(np.array([True, False, True]),
                                           torch.tensor([0.9, 0.1, 0.8]))
    assert y.dtype == p.dtype == np.float64
    assert y.tolist() == [1.0, 0.0, 1.0]


def test_labels_and_probabilities_refuses_a_length_mismatch():
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        checks.labels_and_probabilities([0, 1, 1], [0.5, 0.5])


@pytest.mark.parametrize("labels", [[0, 0.5, 1], [0, 2, 1], [-1, 0, 1]])
def test_labels_and_probabilities_refuses_non_binary_labels(labels):
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        checks.labels_and_probabilities(labels, [0.1, 0.2, 0.3])


def test_labels_and_probabilities_names_which_input_holds_nan():
    with pytest.raises(ValueError, match="labels contains NaN"):
        checks.labels_and_probabilities([0, math.nan], [0.1, 0.2])
    with pytest.raises(ValueError, match="probs contains NaN"):
        checks.labels_and_probabilities([0, 1], [0.1, math.nan])


@pytest.mark.parametrize("values", [["a", "b"], "0.5", [[0.1], [0.2, 0.3]]])
def test_as_array_refuses_non_numeric_or_ragged_input_naming_the_field(values):
    """The module's contract: a bad argument fails with a message that names the field."""
    with pytest.raises(ValueError, match="scores"):
        checks.as_array(values, "scores")
