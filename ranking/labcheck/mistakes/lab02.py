"""Known mistakes of lab 2, the GBDT baseline (labs/02_gbdt.ipynb).

Exercises: ``historical_ctr``, ``gap_closed`` and ``rounds_to_keep``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..common import mistake


# ------------------------------------------------------------- historical click rate
def _earlier_seconds(frame, key):
    """Impressions and clicks of each row's key in the seconds before the row's second."""
    per_second = frame.groupby([key, "timestamp"])["click"].agg(["size", "sum"])
    before = per_second.groupby(level=0).cumsum() - per_second
    return before.reindex(pd.MultiIndex.from_arrays([frame[key], frame["timestamp"]]))


@mistake("historical_ctr",
         hint="The rate includes the row's own click (a cumulative sum up to and including "
              "the row): count only *earlier* impressions, since a served ad's own click is "
              "not known when it is scored.")
def running_sum_with_own_click(impressions, key, prior, strength=50.0):
    frame = impressions.sort_values("timestamp", kind="stable")
    clicks = frame.groupby(key)["click"].cumsum()
    seen = frame.groupby(key).cumcount() + 1
    return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)


@mistake("historical_ctr",
         hint="The rate includes the row's own click: count only *earlier* impressions (a "
              "served ad's own click is not known when it is scored).")
def own_click_added(impressions, key, prior, strength=50.0):
    before = _earlier_seconds(impressions, key)
    clicks = before["sum"].to_numpy() + impressions["click"].to_numpy()
    return (clicks + strength * prior) / (before["size"].to_numpy() + 1 + strength)


@mistake("historical_ctr",
         hint="Rows logged in the same second as this one are counted: use only impressions "
              "with a strictly smaller timestamp.")
def same_second_counted(impressions, key, prior, strength=50.0):
    frame = impressions.sort_values("timestamp", kind="stable")
    clicks = frame.groupby(key)["click"].cumsum() - frame["click"]
    seen = frame.groupby(key).cumcount()
    return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)


@mistake("historical_ctr",
         hint="No smoothing: use (clicks + strength * prior) / (impressions + strength).")
def no_smoothing(impressions, key, prior, strength=50.0):
    before = _earlier_seconds(impressions, key)
    seen, clicks = before["size"].to_numpy(), before["sum"].to_numpy()
    return np.where(seen > 0, clicks / np.maximum(seen, 1), prior)


@mistake("historical_ctr",
         hint="The rows were put in order of impression_id, not of time: sort by timestamp.")
def ordered_by_impression_id(impressions, key, prior, strength=50.0):
    frame = impressions.sort_values("impression_id")
    clicks = frame.groupby(key)["click"].cumsum() - frame["click"]
    seen = frame.groupby(key).cumcount()
    return ((clicks + strength * prior) / (seen + strength)).reindex(impressions.index)


@mistake("historical_ctr",
         hint="The right rates in the wrong order: return them in the order of the rows you "
              "were given (sorting a copy is fine; put the answers back, e.g. with the "
              "index).")
def answers_left_in_time_order(impressions, key, prior, strength=50.0):
    frame = impressions.sort_values("timestamp", kind="stable")
    before = _earlier_seconds(frame, key)
    return (before["sum"].to_numpy() + strength * prior) / (before["size"].to_numpy() + strength)


@mistake("historical_ctr",
         hint="That is each key's click rate over the whole log, future included: count "
              "earlier rows only.")
def whole_log_rate(impressions, key, prior, strength=50.0):
    return impressions.groupby(key)["click"].transform("mean").to_numpy()


@mistake("historical_ctr",
         hint="Use the prior you are given, not the click rate of the frame.")
def prior_from_the_frame(impressions, key, prior, strength=50.0):
    prior = impressions["click"].mean()
    before = _earlier_seconds(impressions, key)
    return (before["sum"].to_numpy() + strength * prior) / (before["size"].to_numpy() + strength)


# ------------------------------------------------------------------------ gap closed
def _log_loss(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


@mistake("gap_closed",
         hint="You computed the share of the gap still *open*: measure how far the model "
              "got from the base rate.")
def share_still_open(labels, probs, oracle_probs, base_rate):
    base = _log_loss(labels, np.full(len(labels), base_rate))
    oracle = _log_loss(labels, oracle_probs)
    return float((_log_loss(labels, probs) - oracle) / (base - oracle))


@mistake("gap_closed",
         hint="Use the base_rate argument (the training days' rate), not the mean of these "
              "labels.")
def base_rate_from_the_labels(labels, probs, oracle_probs, base_rate):
    base = _log_loss(labels, np.full(len(labels), np.mean(labels)))
    return float((base - _log_loss(labels, probs)) / (base - _log_loss(labels, oracle_probs)))


@mistake("gap_closed", hint="Return a share (1.0 = the whole gap), not a percentage.")
def percentage(labels, probs, oracle_probs, base_rate):
    base = _log_loss(labels, np.full(len(labels), base_rate))
    share = (base - _log_loss(labels, probs)) / (base - _log_loss(labels, oracle_probs))
    return float(100 * share)


@mistake("gap_closed",
         hint="That is the normalized entropy: compare the model with both the base rate "
              "and the oracle.")
def normalized_entropy_instead(labels, probs, oracle_probs, base_rate):
    return float(_log_loss(labels, probs) / _log_loss(labels, np.full(len(labels),
                                                                     np.mean(labels))))


@mistake("gap_closed",
         hint="A model worse than the base rate closes a *negative* share of the gap: do not "
              "clip at 0.")
def clipped_at_zero(labels, probs, oracle_probs, base_rate):
    base = _log_loss(labels, np.full(len(labels), base_rate))
    share = (base - _log_loss(labels, probs)) / (base - _log_loss(labels, oracle_probs))
    return float(max(0.0, share))


# ------------------------------------------------------------------- rounds to keep
_COUNT_FROM_ONE = ("Rounds count from 1: the first tree is round 1, so add 1 to a 0-based "
                   "position.")


@mistake("rounds_to_keep", hint=_COUNT_FROM_ONE)
def zero_based_position(valid_losses, tolerance=0.0):
    return int(np.argmin(np.asarray(valid_losses, float)))


@mistake("rounds_to_keep", hint=_COUNT_FROM_ONE)
def pandas_idxmin_label(valid_losses, tolerance=0.0):
    return int(pd.Series(valid_losses).idxmin())


@mistake("rounds_to_keep",
         hint="Use the tolerance: the first round within tolerance of the lowest loss is "
              "enough.")
def tolerance_ignored(valid_losses, tolerance=0.0):
    return int(np.argmin(np.asarray(valid_losses, float))) + 1


@mistake("rounds_to_keep",
         hint="Take the *first* (smallest) round that qualifies: fewer trees serve faster.")
def last_round_within_tolerance(valid_losses, tolerance=0.0):
    losses = np.asarray(valid_losses, float)
    return int(np.flatnonzero(losses <= losses.min() + tolerance)[-1]) + 1


@mistake("rounds_to_keep",
         hint="That is the last round: keep the round with the lowest validation loss.")
def every_round(valid_losses, tolerance=0.0):
    return len(valid_losses)


@mistake("rounds_to_keep", hint="That is the round with the *highest* validation loss.")
def highest_loss(valid_losses, tolerance=0.0):
    return int(np.argmax(np.asarray(valid_losses, float))) + 1
