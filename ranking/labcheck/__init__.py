"""Checks for the labs' exercises.

Each ``check_*`` function calls the reader's function on cases whose answers it
computes itself, prints one ``Correct: ...`` line when every case matches, and
otherwise raises ``AssertionError`` with a hint. An exercise still holding its
``raise NotImplementedError`` stub fails with "not implemented yet".

The checks take the reader's function as their first argument; a check that
also looks at the lab's real data takes that data as further arguments. A lab
uses them as ``from ranking import labcheck`` then ``labcheck.check_cross_layer(cross_layer)``.

The hints come from a catalogue of known mistakes: wrong versions of each exercise,
each filed with the hint it deserves. When the reader's answer is wrong, the check
runs them on the same inputs and shows the hints of those that give the reader's
answers (``mistakes.Answers``). The files:

- ``labNN.py``: lab N's checks (lab 1's in ``lab01.py``), with the right answers and
  the tests of type, shape and inputs changed in place;
- ``mistakes/labNN.py``: lab N's known mistakes;
- ``common.py``: what both share (calling the reader's function, comparing numbers,
  printing success, the ``mistake`` decorator).

To add the checks of a new lab, say lab 10:

1. write ``lab10.py`` with a docstring naming the lab and its exercises, an
   ``__all__`` of its ``check_*`` functions, the helpers from ``.common``, and in
   each check an ``Answers`` that records the reader's answers, for its hints;
2. write ``mistakes/lab10.py`` with at least one wrong version of each exercise,
   filed with ``@mistake("exercise", hint="...")`` (no hint for a mistake that the
   check's own tests of type, shape or NaN catch), and add it to ``LABS`` in
   ``mistakes/__init__.py``;
3. import the checks below and add them to ``__all__``.

tests/test_labs.py runs every known mistake through its check: each must be rejected,
with its hint in the message.
"""

from .lab01 import (check_highest_ctr_surface, check_missed_conversion_share,
                    check_normalized_entropy)
from .lab02 import check_gap_closed, check_historical_ctr, check_rounds_to_keep
from .lab03 import check_cross_layer, check_log_clip_standardize
from .lab04 import check_mix_experts, check_weight_for_share
from .lab05 import check_route_to_tower, check_surface_gaps
from .lab06 import check_delta_buckets, check_interval_sum_pool, check_masked_softmax
from .lab07 import (check_correct_downsampling, check_fake_negative_correction,
                    check_platt_scale, check_quantile_ece)
from .lab08 import (check_choose_precision, check_first_overflow, check_masked_variance,
                    check_resilient_update)
from .lab09 import check_distillation_loss, check_shard_rows, check_top_k_flips
from .lab10 import check_piecewise_linear_encoding, check_top_slot_value
from .labA1 import check_ratings_before, check_user_interval

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
    "check_masked_variance",
    "check_distillation_loss",
    "check_top_k_flips",
    "check_shard_rows",
    "check_piecewise_linear_encoding",
    "check_top_slot_value",
    "check_ratings_before",
    "check_user_interval",
]
