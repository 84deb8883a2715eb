"""Checks for the labs' exercises.

Each ``check_*`` function calls the reader's function on cases whose answers it
computes itself, prints one ``Correct: ...`` line when every case matches, and
otherwise raises ``AssertionError`` with a hint. An exercise still holding its
``raise NotImplementedError`` stub fails with "not implemented yet".

The checks take the reader's function as their first argument; a check that
also looks at the lab's real data takes that data as further arguments. A lab
uses them as ``from ranking import labcheck`` then ``labcheck.check_cross_layer(cross_layer)``.

Each lab's checks live in their own module, ``labNN.py`` (lab 1 in ``lab01.py``),
and the helpers they share (calling the reader's function, comparing numbers,
printing success) in ``_common.py``. To add the checks of a new lab, say lab 6:

1. write ``lab06.py`` with a docstring naming the lab and its exercises, an
   ``__all__`` of its ``check_*`` functions, and the helpers from ``._common``;
2. import those checks below and add them to ``__all__``;
3. list planted wrong answers for each new check in ``tests/test_labs.py``.
"""

from .lab01 import check_highest_ctr_surface, check_missed_conversion_share, check_normalized_entropy
from .lab02 import check_gap_closed, check_historical_ctr, check_rounds_to_keep
from .lab03 import check_cross_layer, check_log_clip_standardize
from .lab04 import check_mix_experts, check_weight_for_share
from .lab05 import check_route_to_tower, check_surface_gaps
from .lab06 import check_delta_buckets, check_interval_sum_pool, check_masked_softmax
from .lab07 import (check_correct_downsampling, check_fake_negative_correction,
                    check_platt_scale, check_quantile_ece)
from .lab08 import check_choose_precision, check_first_overflow, check_resilient_update
from .lab09 import check_distillation_loss, check_shard_rows, check_top_k_flips

__all__ = [
    "check_normalized_entropy",
    "check_highest_ctr_surface",
    "check_missed_conversion_share",
    "check_historical_ctr",
    "check_gap_closed",
    "check_rounds_to_keep",
    "check_cross_layer",
    "check_log_clip_standardize",
    "check_mix_experts",
    "check_weight_for_share",
    "check_route_to_tower",
    "check_surface_gaps",
    "check_delta_buckets",
    "check_interval_sum_pool",
    "check_masked_softmax",
    "check_quantile_ece",
    "check_correct_downsampling",
    "check_platt_scale",
    "check_fake_negative_correction",
    "check_first_overflow",
    "check_choose_precision",
    "check_resilient_update",
    "check_distillation_loss",
    "check_top_k_flips",
    "check_shard_rows",
]
