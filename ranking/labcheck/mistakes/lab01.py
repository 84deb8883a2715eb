"""Known mistakes of lab 1, the ad log (labs/01_ad_log.ipynb).

Exercises: ``normalized_entropy``, ``highest_ctr_surface`` and ``missed_conversion_share``.
"""

from __future__ import annotations

import numpy as np

from ..common import mistake


def _base_entropy(rate: float) -> float:
    return -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))


# ------------------------------------------------------------- normalized entropy
@mistake("normalized_entropy",
         hint="This is the plain log loss: divide it by the entropy of the base rate.")
def plain_log_loss(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@mistake("normalized_entropy",
         hint="The base rate is the mean of the *labels* (the observed click rate), not "
              "the mean of the predictions.")
def base_rate_from_predictions(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(log_loss / _base_entropy(p.mean()))


@mistake("normalized_entropy", hint="Use the *mean* log loss, not the sum, in the numerator.")
def summed_log_loss(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    log_loss = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(log_loss / _base_entropy(y.mean()))


@mistake("normalized_entropy",
         hint="The log loss has two terms, y log p and (1 - y) log(1 - p): the negatives "
              "count too.")
def no_negative_class_term(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    log_loss = -np.mean(y * np.log(p))
    return float(log_loss / _base_entropy(y.mean()))


@mistake("normalized_entropy",
         hint="The sign is flipped: log loss is the *negative* mean log-likelihood.")
def sign_flipped(labels, probs):
    y, p = np.asarray(labels, float), np.asarray(probs, float)
    log_likelihood = np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(log_likelihood / _base_entropy(y.mean()))


# ------------------------------------------------------------- highest-CTR surface
@mistake("highest_ctr_surface",
         hint="You returned the *lowest*: use idxmax, or sort descending.")
def lowest_ctr(impressions):
    return str(impressions.groupby("surface", observed=True)["click"].mean().idxmin())


@mistake("highest_ctr_surface",
         hint="You returned the surface with the most *clicks*: divide by impressions.")
def most_clicks(impressions):
    return str(impressions.groupby("surface", observed=True)["click"].sum().idxmax())


@mistake("highest_ctr_surface", hint="You returned the surface with the most *impressions*.")
def most_impressions(impressions):
    return str(impressions["surface"].value_counts().idxmax())


@mistake("highest_ctr_surface")
def label_list_not_str(impressions):
    ctr = impressions.groupby("surface", observed=True)["click"].mean()
    return list(ctr[ctr == ctr.max()].index)


# --------------------------------------------------------- missed conversion share
def _delays(impressions):
    """Seconds from impression to conversion, for the clicks that converted."""
    converted = impressions[(impressions["click"] == 1) & (impressions["conversion"] == 1)]
    return converted["conversion_timestamp"] - converted["timestamp"]


@mistake("missed_conversion_share",
         hint="That is the share *observed* by the cutoff: count the conversions arriving "
              "later.")
def share_observed(impressions, cutoff_hours=24.0):
    return float((_delays(impressions) <= cutoff_hours * 3600).mean())


@mistake("missed_conversion_share",
         hint="Timestamps are in seconds: convert cutoff_hours to seconds (* 3600).")
def hours_compared_with_seconds(impressions, cutoff_hours=24.0):
    return float((_delays(impressions) > cutoff_hours).mean())


@mistake("missed_conversion_share",
         hint="Convert hours to seconds once (multiply by 3600), not twice.")
def hours_converted_twice(impressions, cutoff_hours=24.0):
    return float((_delays(impressions) > cutoff_hours * 3600 * 3600).mean())


@mistake("missed_conversion_share",
         hint="A conversion exactly cutoff_hours after the impression is observed in time: "
              "use a strict >.")
def conversion_at_the_cutoff_missed(impressions, cutoff_hours=24.0):
    return float((_delays(impressions) >= cutoff_hours * 3600).mean())


@mistake("missed_conversion_share",
         hint="Use the cutoff_hours argument instead of a fixed 24 hours.")
def cutoff_ignored(impressions, cutoff_hours=24.0):
    return float((_delays(impressions) > 24 * 3600).mean())


@mistake("missed_conversion_share",
         hint="Divide by the number of conversions, not by the number of clicks.")
def divided_by_clicks(impressions, cutoff_hours=24.0):
    clicked = impressions[impressions["click"] == 1]
    late = (clicked["conversion_timestamp"] - clicked["timestamp"]) > cutoff_hours * 3600
    return float(late.sum() / len(clicked))


@mistake("missed_conversion_share",
         hint="Divide by the number of conversions, not by the number of impressions.")
def divided_by_impressions(impressions, cutoff_hours=24.0):
    late = (impressions["conversion_timestamp"] - impressions["timestamp"]) > cutoff_hours * 3600
    return float(late.sum() / len(impressions))


@mistake("missed_conversion_share", hint="Return a share between 0 and 1, not a percentage.")
def percentage(impressions, cutoff_hours=24.0):
    return 100 * float((_delays(impressions) > cutoff_hours * 3600).mean())
