"""Churn measures between two versions' scores, and score regularization in fit."""

import numpy as np
import pytest
import torch

from ranking.churn import (churn_report, kendall_tau, rank_in_request, relative_change,
                           top_k_flips)
from ranking.train import fit, predict

REQUESTS = np.array([7, 7, 7, 7, 3, 3, 3])


def test_rank_in_request_ranks_best_first_and_breaks_ties_by_position():
    scores = np.array([0.1, 0.4, 0.4, 0.2, 0.9, 0.1, 0.5])
    assert rank_in_request(REQUESTS, scores).tolist() == [3, 0, 1, 2, 0, 2, 1]


def test_top_k_flips_counts_changed_slots():
    old = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.5, 0.1])
    assert top_k_flips(REQUESTS, old, old) == 0.0
    swapped = np.array([0.3, 0.4, 0.2, 0.1, 0.9, 0.5, 0.1])     # slots 1 and 2 swap in request 7
    assert top_k_flips(REQUESTS, old, swapped, k=3) == pytest.approx((2 / 3 + 0) / 2)
    below = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.5, 0.1]) * 2   # a monotone change flips nothing
    assert top_k_flips(REQUESTS, old, below, k=3) == 0.0
    reversed_ = -old
    # request 7: every top-3 slot changes; request 3 (3 ads): the middle one stays
    assert top_k_flips(REQUESTS, old, reversed_, k=3) == pytest.approx((1 + 2 / 3) / 2)


def test_top_k_flips_ignores_changes_below_the_top_k():
    old = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.5, 0.1])
    new = np.array([0.4, 0.3, 0.05, 0.15, 0.9, 0.5, 0.1])        # slots 3 and 4 swap
    assert top_k_flips(REQUESTS, old, new, k=2) == 0.0
    assert top_k_flips(REQUESTS, old, new, k=3) > 0


def test_kendall_tau_is_one_for_the_same_order_and_minus_one_reversed():
    old = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.5, 0.1])
    assert kendall_tau(REQUESTS, old, old * 0.5) == pytest.approx(1.0)
    assert kendall_tau(REQUESTS, old, -old) == pytest.approx(-1.0)


def test_relative_change():
    assert relative_change([0.1, 0.2], [0.1, 0.2]) == 0.0
    assert relative_change([0.1], [0.3]) == pytest.approx(0.2 / 0.2)
    with pytest.raises(ValueError, match="positive"):
        relative_change([0.0], [0.1])


def test_churn_report_and_bad_input():
    old = np.array([0.4, 0.3, 0.2, 0.1, 0.9, 0.5, 0.1])
    report = churn_report(REQUESTS, old, old)
    assert report == {"top_3_flips": 0.0, "kendall_tau": pytest.approx(1.0), "relative_change": 0.0}
    with pytest.raises(ValueError, match="one length"):
        top_k_flips(REQUESTS, old[:-1], old)
    with pytest.raises(ValueError, match="finite"):
        kendall_tau(REQUESTS, old, np.r_[old[:-1], np.nan])
    with pytest.raises(ValueError, match="k must"):
        top_k_flips(REQUESTS, old, old, k=0)
    with pytest.raises(ValueError, match="2 or more"):
        kendall_tau(np.arange(7), old, old)


class Logit(torch.nn.Module):
    """A one-weight model: logit = w * x + b."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, batch):
        return {"click": self.linear(batch["dense"]).squeeze(-1)}


def _data(teacher: float | None = None) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 1, generator=generator)
    label = (torch.rand(4000, generator=generator) < torch.sigmoid(2 * x[:, 0])).float()
    data = {"dense": x, "label_click": label}
    if teacher is not None:
        data["teacher_click"] = torch.full((4000,), teacher)
    return data


def test_distillation_pulls_predictions_toward_the_teacher():
    options = dict(epochs=20, batch_size=500, lr=0.05, progress=False)
    torch.manual_seed(0)
    plain = fit(Logit(), _data(0.5), **options).model
    torch.manual_seed(0)
    pulled = fit(Logit(), _data(0.5), distillation={"click": 5.0}, **options).model
    spread_plain = predict(plain, _data())["click"].std()
    spread_pulled = predict(pulled, _data())["click"].std()
    assert spread_pulled < 0.5 * spread_plain            # toward the constant teacher, 0.5


def test_zero_distillation_weight_trains_the_same_model():
    options = dict(epochs=2, batch_size=500, progress=False)
    torch.manual_seed(0)
    plain = fit(Logit(), _data(0.5), **options).model
    torch.manual_seed(0)
    zero = fit(Logit(), _data(0.5), distillation={"click": 0.0}, **options).model
    assert torch.equal(plain.linear.weight, zero.linear.weight)


@pytest.mark.parametrize("distillation, data, message", [
    ({"save": 1.0}, _data(0.5), "not in tasks"),
    ({"click": -1.0}, _data(0.5), ">= 0"),
    ({"click": 1.0}, _data(), "teacher_click"),
    ({"click": 1.0}, _data(1.5), r"\[0, 1\]"),
    ([("click", 1.0)], _data(0.5), "dict"),
])
def test_distillation_refuses_bad_settings(distillation, data, message):
    with pytest.raises(ValueError, match=message):
        fit(Logit(), data, distillation=distillation, epochs=1, progress=False)
