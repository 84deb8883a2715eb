"""Checks for the labs' exercises.

Each ``check_*`` function calls the reader's function on cases whose answers it
computes itself, prints one ``Correct: ...`` line when every case matches, and
otherwise raises ``AssertionError`` with a hint. An exercise still holding its
``raise NotImplementedError`` stub fails with "not implemented yet".

The checks take the reader's function as their first argument; a check that
also looks at the lab's real data takes that data as further arguments.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

SURFACES: tuple[str, ...] = ("home_feed", "related_pins", "search")

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
]


# ----------------------------------------------------------------------------- helpers
def _call(fn: Callable, *args, **kwargs) -> Any:
    """Call the reader's function; a stub that still raises becomes a failed check."""
    name = getattr(fn, "__name__", "your function")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"{name} is not implemented yet: replace the line "
            f"`raise NotImplementedError(...)` with your code, run that cell, then this one."
        ) from None


def _as_float(value: Any, name: str) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise AssertionError(
            f"{name} should return a single number, got {type(value).__name__}: {value!r}"
        ) from None
    if math.isnan(result):
        raise AssertionError(f"{name} returned NaN: look for a division by zero or log(0).")
    return result


def _close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _correct(message: str) -> None:
    print(f"Correct: {message}")


# ------------------------------------------------------------- normalized entropy (lab 1)
def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def _entropy(rate: float) -> float:
    return float(-(rate * np.log(rate) + (1 - rate) * np.log1p(-rate)))


def _ne_cases(seed: int = 0) -> list[tuple[str, Any, Any]]:
    """(description, labels, probs) cases with both classes and probs inside (0, 1)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i, (n, rate) in enumerate([(50, 0.3), (400, 0.05), (2_000, 0.02), (1_000, 0.5), (300, 0.1)]):
        logits = rng.normal(np.log(rate / (1 - rate)), 1.0, n)
        probs = 1 / (1 + np.exp(-logits))
        labels = (rng.random(n) < probs).astype(np.int8)
        labels[:2] = [0, 1]  # both classes present
        if i % 2:  # half of the cases as pandas Series, like the ad log's columns
            cases.append((f"{n} random rows (pandas Series)", pd.Series(labels), pd.Series(probs)))
        else:
            cases.append((f"{n} random rows (numpy arrays)", labels, probs))
    return cases


def check_normalized_entropy(normalized_entropy: Callable) -> None:
    """Check ``normalized_entropy(labels, probs)`` (He et al. 2014) on random cases."""
    name = "normalized_entropy"
    # 1. predicting the base rate everywhere scores exactly 1
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 0, 0, 0], dtype=np.int8)
    base = np.full(labels.size, labels.mean())
    got = _as_float(_call(normalized_entropy, labels, base), name)
    if not _close(got, 1.0):
        hint = (" NE = (mean log loss) / (entropy of the base rate), and the log loss needs both "
                "terms, y log p and (1 - y) log(1 - p).")
        if _close(got, _log_loss(labels, base)):
            hint = " It equals the plain log loss: divide by the entropy of the base rate."
        elif _close(got, float(labels.size)):
            hint = " It equals the number of rows: use the *mean* log loss, not the sum."
        raise AssertionError(
            f"Predicting the base rate (0.2) for every row should give NE = 1.0, got {got:.6f}.{hint}"
        )
    # 2. random cases
    for description, labels, probs in _ne_cases():
        y, p = np.asarray(labels, dtype=float), np.asarray(probs, dtype=float)
        expected = _log_loss(y, p) / _entropy(y.mean())
        got = _as_float(_call(normalized_entropy, labels, probs), name)
        if _close(got, expected):
            continue
        hint = "NE = (mean log loss of the predictions) / (entropy of the base rate)."
        if _close(got, _log_loss(y, p)):
            hint = "This is the plain log loss: divide it by the entropy of the base rate."
        elif _close(got, -expected):
            hint = "The sign is flipped: log loss is the *negative* mean log-likelihood."
        elif _close(got, _log_loss(y, p) / _entropy(p.mean())):
            hint = ("The base rate is the mean of the *labels* (the observed click rate), "
                    "not the mean of the predictions.")
        elif _close(got, _log_loss(y, p) * len(y) / _entropy(y.mean())):
            hint = "Use the *mean* log loss, not the sum, in the numerator."
        raise AssertionError(f"{description}: expected NE = {expected:.6f}, got {got:.6f}. {hint}")
    _correct(f"{name} matches the definition on {len(_ne_cases()) + 1} cases "
             "(the base-rate predictor scores exactly 1).")


# ------------------------------------------------------------- highest-CTR surface (lab 1)
def _crafted_surface_frame(clicks: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """impressions with ``surface`` and ``click``: {surface: (impressions, clicks)}."""
    surfaces, click = [], []
    for surface, (n, c) in clicks.items():
        surfaces += [surface] * n
        click += [1] * c + [0] * (n - c)
    order = np.random.default_rng(0).permutation(len(click))  # mix the surfaces' rows
    frame = pd.DataFrame({
        "surface": pd.Categorical(np.asarray(surfaces)[order], categories=list(SURFACES)),
        "click": np.asarray(click, dtype=np.int8)[order],
    })
    frame["timestamp"] = np.arange(len(frame), dtype=np.int64) * 60
    return frame


def _highest_ctr(frame: pd.DataFrame) -> tuple[str, pd.Series]:
    ctr = frame.groupby("surface", observed=True)["click"].mean()
    return str(ctr.idxmax()), ctr


def check_highest_ctr_surface(highest_ctr_surface: Callable,
                              impressions: pd.DataFrame | None = None) -> None:
    """Check ``highest_ctr_surface(impressions) -> str`` on crafted frames and the real log."""
    name = "highest_ctr_surface"
    crafted = [
        # most clicks on the home feed, highest click *rate* on related pins, search lowest
        ("crafted log 1", {"home_feed": (1_000, 30), "related_pins": (100, 5), "search": (50, 1)}),
        # the home feed wins here, with the fewest impressions
        ("crafted log 2", {"home_feed": (40, 4), "related_pins": (500, 20), "search": (300, 15)}),
    ]
    frames = [(label, _crafted_surface_frame(spec)) for label, spec in crafted]
    if impressions is not None:
        frames.append(("the lab's ad log", impressions))
    answers = [_call(highest_ctr_surface, frame.copy()) for _, frame in frames]
    expected_answers = [_highest_ctr(frame)[0] for _, frame in frames]
    if len(set(map(repr, answers))) == 1 and len(set(expected_answers)) > 1:
        raise AssertionError(
            f"{name} returned {answers[0]!r} for every log, but the answer differs between them: "
            "compute it from the frame you are given (group by surface, average the clicks)."
        )
    for (label, frame), got in zip(frames, answers):
        expected, ctr = _highest_ctr(frame)
        if not isinstance(got, str):
            raise AssertionError(
                f"{name} should return the surface's name as a str (e.g. 'search'), "
                f"got {type(got).__name__}: {got!r}. Hint: str(...) of a pandas label works."
            )
        if got == expected:
            continue
        rates = ", ".join(f"{s} {r:.2%}" for s, r in ctr.items())
        hint = f"Observed click rates there: {rates}."
        if got == str(ctr.idxmin()):
            hint += " You returned the *lowest*: use idxmax, or sort descending."
        elif got == str(frame.groupby("surface", observed=True)["click"].sum().idxmax()):
            hint += " You returned the surface with the most *clicks*: divide by impressions."
        elif got == str(frame["surface"].value_counts().idxmax()):
            hint += " You returned the surface with the most *impressions*."
        elif got not in SURFACES:
            hint += f" {got!r} is not a surface: choose one of {SURFACES}."
        else:
            hint += " Compute each surface's mean click on the frame you are given."
        raise AssertionError(f"On {label} the highest CTR is on {expected!r}, you returned {got!r}. {hint}")
    answer, ctr = _highest_ctr(frames[-1][1])
    where = "the lab's ad log" if impressions is not None else "the crafted logs"
    _correct(f"{answer} has the highest observed CTR on {where} ({ctr[answer]:.2%}).")


# --------------------------------------------------------- missed conversion share (lab 1)
def _crafted_conversion_frame() -> pd.DataFrame:
    """Clicked rows whose conversions arrive at known delays, plus rows that do not convert."""
    hours = np.array([0.1, 0.5, 2.0, 5.0, 12.0, 23.9, 24.0, 24.1, 30.0, 72.0, 200.0, 400.0])
    n_conv = hours.size
    n_clicks_only, n_no_click = 30, 60
    n = n_conv + n_clicks_only + n_no_click
    rng = np.random.default_rng(1)
    timestamp = np.sort(rng.integers(0, 14 * 86_400, n)).astype(np.int64)
    click = np.r_[np.ones(n_conv + n_clicks_only), np.zeros(n_no_click)].astype(np.int8)
    conversion = np.r_[np.ones(n_conv), np.zeros(n_clicks_only + n_no_click)].astype(np.int8)
    conversion_ts = np.full(n, np.nan)
    conversion_ts[:n_conv] = timestamp[:n_conv] + hours * 3600.0
    order = rng.permutation(n)
    return pd.DataFrame({
        "surface": pd.Categorical(rng.choice(list(SURFACES), n), categories=list(SURFACES)),
        "timestamp": timestamp[order],
        "click": click[order],
        "conversion": conversion[order],
        "conversion_timestamp": conversion_ts[order],
    })


def _missed_share(frame: pd.DataFrame, cutoff_hours: float) -> float:
    converted = frame[(frame["click"] == 1) & (frame["conversion"] == 1)]
    delay = converted["conversion_timestamp"].to_numpy(float) - converted["timestamp"].to_numpy(float)
    return float(np.mean(delay > cutoff_hours * 3600.0))


def check_missed_conversion_share(missed_conversion_share: Callable,
                                  impressions: pd.DataFrame | None = None) -> None:
    """Check ``missed_conversion_share(impressions, cutoff_hours=24.0) -> float``."""
    name = "missed_conversion_share"
    crafted = _crafted_conversion_frame()
    cases: list[tuple[str, pd.DataFrame, dict]] = [
        ("the crafted log with the default cutoff", crafted, {}),
        ("the crafted log with cutoff_hours=1", crafted, {"cutoff_hours": 1.0}),
        ("the crafted log with cutoff_hours=72", crafted, {"cutoff_hours": 72.0}),
    ]
    if impressions is not None:
        cases.append(("the lab's ad log", impressions, {}))
        cases.append(("the lab's ad log with cutoff_hours=6", impressions, {"cutoff_hours": 6.0}))
    for label, frame, kwargs in cases:
        cutoff = kwargs.get("cutoff_hours", 24.0)
        expected = _missed_share(frame, cutoff)
        got = _as_float(_call(missed_conversion_share, frame.copy(), **kwargs), name)
        if _close(got, expected, rel=1e-9, abs_=1e-12):
            continue
        converted = frame[(frame["click"] == 1) & (frame["conversion"] == 1)]
        delay = converted["conversion_timestamp"] - converted["timestamp"]
        hint = ("Among clicked impressions with conversion == 1, count those with "
                "conversion_timestamp - timestamp > cutoff_hours * 3600 (timestamps are seconds).")
        if _close(got, 1.0 - expected):
            hint = "That is the share *observed* by the cutoff: count the conversions arriving later."
        elif _close(got, float(np.mean(delay > cutoff))):
            hint = "Timestamps are in seconds: convert cutoff_hours to seconds (* 3600)."
        elif _close(got, float(np.mean(delay / 3600.0 > cutoff * 3600.0))) or _close(
                got, float(np.mean(delay > cutoff * 3600.0 * 3600.0))):
            hint = "Convert hours to seconds once (multiply by 3600), not twice."
        elif _close(got, float(np.mean(delay >= cutoff * 3600.0))):
            hint = ("A conversion exactly cutoff_hours after the impression is observed in time: "
                    "use a strict >.")
        elif _close(got, _missed_share(frame, 24.0)) and cutoff != 24.0:
            hint = "Use the cutoff_hours argument instead of a fixed 24 hours."
        elif _close(got, float((delay > cutoff * 3600.0).sum() / max(int((frame["click"] == 1).sum()), 1))):
            hint = "Divide by the number of conversions, not by the number of clicks."
        elif _close(got, float((delay > cutoff * 3600.0).sum() / len(frame))):
            hint = "Divide by the number of conversions, not by the number of impressions."
        elif 1.0 < got <= 100.0:
            hint = "Return a share between 0 and 1, not a percentage."
        raise AssertionError(f"On {label}: expected {expected:.4f}, got {got:.4f}. {hint}")
    label, frame, _ = cases[-2] if impressions is not None else cases[0]
    share = _missed_share(frame, 24.0)
    _correct(f"on {label.replace(' with the default cutoff', '')}, {share:.1%} of the reported "
             "conversions arrive more than 24 hours after the impression: a model trained on "
             "one-day-old labels never sees them.")


# ------------------------------------------------------------- historical click rate (lab 2)
def _reference_rate(frame: pd.DataFrame, key: str, prior: float, strength: float, *,
                    include_current: bool = False, same_second: bool = False,
                    order_by: str = "timestamp", smooth: bool = True) -> np.ndarray:
    """Smoothed click rate of each row's key over earlier rows, in the rows' order.

    The keyword arguments build the usual mistakes, for hints: counting the row
    itself, counting rows of the same second, ordering by another column, no smoothing.
    """
    order = np.lexsort((np.arange(len(frame)), frame[order_by].to_numpy()))
    data = pd.DataFrame({"key": frame[key].to_numpy()[order],
                         "moment": frame[order_by].to_numpy()[order],
                         "click": frame["click"].to_numpy(np.int64)[order]})
    grouped = data.groupby("key", sort=False)["click"]
    seen = grouped.cumcount().to_numpy()
    clicks = (grouped.cumsum() - data["click"]).to_numpy()
    if not same_second:  # rows of the same key and second all see what came before that second
        first = data.groupby(["key", "moment"], sort=False).cumcount().to_numpy()
        seen, clicks = seen - first, clicks - (data.groupby(["key", "moment"], sort=False)["click"].cumsum()
                                              - data["click"]).to_numpy()
    if include_current:
        seen, clicks = seen + 1, clicks + data["click"].to_numpy()
    if smooth:
        rate = (clicks + strength * prior) / (seen + strength)
    else:
        rate = np.where(seen > 0, clicks / np.maximum(seen, 1), prior)
    out = np.empty(len(frame))
    out[order] = rate
    return out


def _crafted_rate_frames() -> list[tuple[str, pd.DataFrame]]:
    """Rows out of time order, ids that do not follow time, and impressions in the same second."""
    hand = pd.DataFrame({
        "impression_id": [5, 3, 0, 6, 1, 4, 2, 7],
        "user_id": [1, 2, 1, 1, 2, 1, 1, 2],
        "item_id": [10, 10, 11, 10, 11, 11, 10, 10],
        "timestamp": [500, 200, 100, 500, 300, 400, 150, 900],
        "click": [0, 1, 1, 1, 0, 1, 0, 1],
    }, index=[17, 11, 12, 18, 13, 15, 14, 19])
    rng = np.random.default_rng(2)
    n = 600
    random = pd.DataFrame({
        "impression_id": rng.permutation(n),
        "user_id": rng.integers(0, 12, n),
        "item_id": rng.integers(0, 30, n),
        "timestamp": rng.integers(0, 150, n).astype(np.int64),
        "click": (rng.random(n) < 0.25).astype(np.int8),
    }, index=rng.permutation(np.arange(5_000, 5_000 + n)))
    return [("an 8-row crafted log", hand), ("a 600-row crafted log", random)]


def _as_rates(got: Any, frame: pd.DataFrame, name: str) -> np.ndarray:
    """The reader's answer as floats in the order of ``frame``'s rows."""
    if isinstance(got, pd.Series) and len(got) == len(frame) and got.index.sort_values().equals(
            frame.index.sort_values()):
        got = got.reindex(frame.index)  # a Series carrying the frame's index: align on it
    try:
        values = np.asarray(got, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} should return one number per row (a numpy array or a "
                             f"pandas Series), got {type(got).__name__}") from None
    if values.size != len(frame):
        raise AssertionError(f"{name} returned {values.size} values for {len(frame)} rows: "
                             "return one rate per impression.")
    if np.isnan(values).any():
        raise AssertionError(f"{name} returned NaN: a key with no earlier impression gets the prior.")
    return values


def check_historical_ctr(historical_ctr: Callable, impressions: pd.DataFrame | None = None) -> None:
    """Check ``historical_ctr(impressions, key, prior, strength=50.0)`` on crafted logs and the real one."""
    name = "historical_ctr"
    cases = []
    for label, frame in _crafted_rate_frames():
        cases.append((label, frame, "user_id", 0.1, 2.0))
        cases.append((label, frame, "item_id", 0.3, 5.0))
    if impressions is not None:
        rate = float(impressions["click"].mean())
        cases.append(("the lab's ad log", impressions, "user_id", rate, 50.0))
        cases.append(("the lab's ad log", impressions, "advertiser_id", rate, 20.0))
    for label, frame, key, prior, strength in cases:
        got = _as_rates(_call(historical_ctr, frame.copy(), key, prior, strength=strength), frame, name)
        expected = _reference_rate(frame, key, prior, strength)
        if np.allclose(got, expected, rtol=1e-9, atol=1e-12):
            continue
        where = f"On {label} with key={key!r}, prior={prior}, strength={strength}"
        wrong = int(np.flatnonzero(~np.isclose(got, expected, rtol=1e-9, atol=1e-12))[0])
        detail = (f" First wrong row: position {wrong} (timestamp {frame['timestamp'].iloc[wrong]}), "
                  f"expected {expected[wrong]:.6f}, got {got[wrong]:.6f}.")
        variants = [
            ({"include_current": True, "same_second": True}, "The rate includes the row's own click (a "
             "cumulative sum up to and including the row): count only *earlier* impressions, since a "
             "served ad's own click is not known when it is scored."),
            ({"include_current": True}, "The rate includes the row's own click: count only *earlier* "
             "impressions (a served ad's own click is not known when it is scored)."),
            ({"same_second": True}, "Rows logged in the same second as this one are counted: use only "
             "impressions with a strictly smaller timestamp."),
            ({"smooth": False}, "No smoothing: use (clicks + strength * prior) / (impressions + strength)."),
            ({"order_by": "impression_id"}, "The rows were put in order of impression_id, not of time: "
             "sort by timestamp."),
        ]
        hint = "Count, for each row, the impressions and clicks of its key with a smaller timestamp."
        for kwargs, text in variants:
            if kwargs.get("order_by", "timestamp") not in frame.columns:
                continue
            if np.allclose(got, _reference_rate(frame, key, prior, strength, **kwargs), rtol=1e-9):
                hint = text
                break
        else:
            whole_log = frame.groupby(key)["click"].transform("mean").to_numpy()
            if np.allclose(got, whole_log):
                hint = "That is each key's click rate over the whole log, future included: count earlier rows only."
            elif np.allclose(np.sort(got), np.sort(expected)):
                hint = ("The right rates in the wrong order: return them in the order of the rows you "
                        "were given (sorting a copy is fine; put the answers back, e.g. with the index).")
            elif np.allclose(got, _reference_rate(frame, key, float(frame["click"].mean()), strength)):
                hint = "Use the prior you are given, not the click rate of the frame."
        raise AssertionError(f"{where}: the rates differ.{detail} {hint}")
    label = "the lab's ad log" if impressions is not None else "the crafted logs"
    _correct(f"{name} counts only earlier impressions and smooths toward the prior on {label} "
             f"({len(cases)} cases).")


# ------------------------------------------------------------------------ gap closed (lab 2)
def _gap(y: np.ndarray, p: np.ndarray, oracle: np.ndarray, base_rate: float) -> float:
    base = _log_loss(y, np.full(y.size, base_rate))
    return (base - _log_loss(y, p)) / (base - _log_loss(y, oracle))


def _gap_cases(test_frame: pd.DataFrame | None) -> list[tuple[str, Any, Any, Any, float]]:
    rng = np.random.default_rng(3)
    cases = []
    for n, rate, mix in [(400, 0.1, 0.5), (3_000, 0.03, 0.8), (1_000, 0.2, 0.2)]:
        oracle = 1 / (1 + np.exp(-rng.normal(np.log(rate / (1 - rate)), 1.2, n)))
        labels = (rng.random(n) < oracle).astype(np.int8)
        labels[:2] = [0, 1]
        probs = np.clip(mix * oracle + (1 - mix) * rate + rng.normal(0, 0.01, n), 1e-4, 1 - 1e-4)
        cases.append((f"{n} random rows", labels, probs, oracle, rate * 1.1))
    worse = np.clip(cases[0][3][::-1], 1e-4, 1 - 1e-4)  # scores unrelated to the rows: worse than the base rate
    cases.append(("a model worse than the base rate", cases[0][1], worse, cases[0][3], 0.1))
    if test_frame is not None:
        y = test_frame["click"].to_numpy()
        oracle = test_frame["p_click"].to_numpy(np.float64)
        base_rate = float(test_frame["click"].iloc[: len(y) // 2].mean())
        probs = 0.6 * oracle + 0.4 * base_rate
        cases.append(("the lab's test days", pd.Series(y), pd.Series(probs), pd.Series(oracle), base_rate))
    return cases


def check_gap_closed(gap_closed: Callable, test_frame: pd.DataFrame | None = None) -> None:
    """Check ``gap_closed(labels, probs, oracle_probs, base_rate) -> float``."""
    name = "gap_closed"
    cases = _gap_cases(test_frame)
    for label, labels, probs, oracle, base_rate in cases:
        y, p, o = (np.asarray(a, dtype=float) for a in (labels, probs, oracle))
        expected = _gap(y, p, o, base_rate)
        got = _as_float(_call(gap_closed, labels, probs, oracle, base_rate), name)
        if _close(got, expected, rel=1e-6, abs_=1e-9):
            continue
        hint = ("gap closed = (LL(base rate) - LL(model)) / (LL(base rate) - LL(oracle)), "
                "with LL the mean log loss and the base rate predicted for every row.")
        if _close(got, 1 - expected):
            hint = "You computed the share of the gap still *open*: measure how far the model got from the base rate."
        elif _close(got, _gap(y, p, o, float(y.mean()))):
            hint = "Use the base_rate argument (the training days' rate), not the mean of these labels."
        elif _close(got, 100 * expected):
            hint = "Return a share (1.0 = the whole gap), not a percentage."
        elif expected < 0 and got == 0:
            hint = "A model worse than the base rate closes a *negative* share of the gap: do not clip at 0."
        elif _close(got, _log_loss(y, p) / _entropy(y.mean())):
            hint = "That is the normalized entropy: compare the model with both the base rate and the oracle."
        raise AssertionError(f"On {label}: expected {expected:.6f}, got {got:.6f}. {hint}")
    _correct(f"{name} matches the definition on {len(cases)} cases, a model worse than the base rate "
             "included (its gap closed is negative).")


# ------------------------------------------------------------------- rounds to keep (lab 2)
def _rounds(losses: np.ndarray, tolerance: float) -> int:
    return int(np.flatnonzero(losses <= losses.min() + tolerance)[0]) + 1


def check_rounds_to_keep(rounds_to_keep: Callable, valid_curve: Any = None) -> None:
    """Check ``rounds_to_keep(valid_losses, tolerance=0.0) -> int`` on crafted and real curves."""
    name = "rounds_to_keep"
    cases: list[tuple[str, Any, dict]] = [
        ("a list falling then rising", [0.50, 0.40, 0.30, 0.35, 0.36], {}),
        ("a curve whose lowest value appears twice", np.array([0.50, 0.30, 0.40, 0.30, 0.45]), {}),
        ("a pandas Series indexed from 0", pd.Series([0.52, 0.41, 0.38, 0.37, 0.39, 0.40]), {}),
        ("a list with tolerance=0.011", [0.50, 0.31, 0.305, 0.30, 0.32], {"tolerance": 0.011}),
        ("a curve still falling at the end", [0.6, 0.5, 0.45, 0.44], {"tolerance": 0.0}),
    ]
    if valid_curve is not None:
        cases.append(("the lab's validation curve", valid_curve, {}))
        cases.append(("the lab's validation curve with tolerance=1e-4", valid_curve, {"tolerance": 1e-4}))
    for label, losses, kwargs in cases:
        values = np.asarray(losses, dtype=float)
        expected = _rounds(values, kwargs.get("tolerance", 0.0))
        got = _call(rounds_to_keep, losses.copy(), **kwargs)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise AssertionError(f"{name} should return a whole number of rounds (int), "
                                 f"got {type(got).__name__}: {got!r}")
        if got == expected:
            continue
        hint = ("Return the smallest round r (counting from 1) whose loss is at most the lowest loss + "
                "tolerance.")
        if got == expected - 1:
            hint = "Rounds count from 1: the first tree is round 1, so add 1 to a 0-based position."
        elif got == len(values):
            hint = "That is the last round: keep the round with the lowest validation loss."
        elif got == int(np.argmax(values)) + 1:
            hint = "That is the round with the *highest* validation loss."
        elif got == _rounds(values, 0.0) and kwargs.get("tolerance"):
            hint = "Use the tolerance: the first round within tolerance of the lowest loss is enough."
        elif got == int(np.flatnonzero(values <= values.min() + kwargs.get("tolerance", 0.0))[-1]) + 1:
            hint = "Take the *first* (smallest) round that qualifies: fewer trees serve faster."
        raise AssertionError(f"On {label}: expected {expected}, got {got}. {hint}")
    _correct(f"{name} picks the right round on {len(cases)} curves.")


# ------------------------------------------------------------------------ cross layer (lab 3)
def _cross_cases() -> list[tuple[str, Any, Any, Any, Any]]:
    """(description, x0, x, weight, bias): random tensors, a non-symmetric weight in each."""
    import torch

    generator = torch.Generator().manual_seed(3)
    cases = []
    for batch, width, dtype in [(4, 3, torch.float32), (64, 17, torch.float32), (8, 5, torch.float64)]:
        x0 = torch.randn(batch, width, generator=generator, dtype=dtype)
        x = torch.randn(batch, width, generator=generator, dtype=dtype)
        weight = torch.randn(width, width, generator=generator, dtype=dtype)
        bias = torch.randn(width, generator=generator, dtype=dtype)
        cases.append((f"a batch of {batch} rows of width {width} ({str(dtype).removeprefix('torch.')})",
                      x0, x, weight, bias))
    x0 = cases[1][1]
    cases.append(("the first layer, where x is x0", x0, x0.clone(), cases[1][3], cases[1][4]))
    return cases


def _cross_reference(x0, x, weight, bias):
    return x0 * (x @ weight.T + bias) + x


def check_cross_layer(cross_layer: Callable) -> None:
    """Check ``cross_layer(x0, x, weight, bias) -> Tensor`` against x0 * (W x + b) + x and CrossNetV2."""
    import torch

    from .nn.cross import CrossNetV2

    name = "cross_layer"
    wrong = {
        "No residual: add x back at the end (x_{l+1} = ... + x_l)":
            lambda x0, x, w, b: x0 * (x @ w.T + b),
        "The product must be with x0, the input of the whole cross network, not with x":
            lambda x0, x, w, b: x * (x @ w.T + b) + x,
        "The weight is stored as (out, in), like nn.Linear's: use x @ weight.T":
            lambda x0, x, w, b: x0 * (x @ w + b) + x,
        "The bias is missing: x0 * (x @ weight.T + bias) + x":
            lambda x0, x, w, b: x0 * (x @ w.T) + x,
        "The residual should be x, not x0":
            lambda x0, x, w, b: x0 * (x @ w.T + b) + x0,
    }
    for description, x0, x, weight, bias in _cross_cases():
        inputs = [t.clone() for t in (x0, x, weight, bias)]
        got = _call(cross_layer, *inputs)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        if any(not torch.equal(a, b) for a, b in zip(inputs, (x0, x, weight, bias))):
            raise AssertionError(f"{name} changed one of its inputs in place: compute a new tensor instead.")
        expected = _cross_reference(x0, x, weight, bias)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} (batch, width), "
                                 f"got {tuple(got.shape)}.")
        if torch.allclose(got.to(expected.dtype), expected, rtol=1e-5, atol=1e-6):
            continue
        hint = "x_{l+1} = x0 * (x @ weight.T + bias) + x, elementwise product with x0."
        for text, fn in wrong.items():
            candidate = fn(x0, x, weight, bias)
            if candidate.shape == got.shape and torch.allclose(got.to(candidate.dtype), candidate,
                                                               rtol=1e-5, atol=1e-6):
                hint = text
                break
        raise AssertionError(f"On {description} the output differs. {hint}")
    # the same computation as the package's CrossNetV2 with one layer
    net = CrossNetV2(input_dim=6, num_layers=1).double()
    x0 = torch.randn(10, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    layer = net.layers[0]
    with torch.no_grad():
        got = _call(cross_layer, x0, x0, layer.weight.detach().clone(), layer.bias.detach().clone())
        if not torch.allclose(got, net(x0), rtol=1e-6, atol=1e-8):
            raise AssertionError(f"{name} disagrees with ranking.nn.CrossNetV2 on a one-layer network.")
    _correct(f"{name} computes x0 * (W x + b) + x on {len(_cross_cases())} cases and agrees with "
             "ranking.nn.CrossNetV2.")


# ------------------------------------------------------- transform of a heavy-tailed count (lab 3)
def _log_clip_standardize(train_values, values, quantile: float = 0.99, ddof: int = 0) -> np.ndarray:
    train_logs = np.log1p(np.asarray(train_values, dtype=float))
    low, high = np.quantile(train_logs, [1 - quantile, quantile])
    clipped_train = np.clip(train_logs, low, high)
    clipped = np.clip(np.log1p(np.asarray(values, dtype=float)), low, high)
    return (clipped - clipped_train.mean()) / clipped_train.std(ddof=ddof)


def _transform_cases(train_values, values) -> list[tuple[str, Any, Any, dict]]:
    rng = np.random.default_rng(7)
    train = np.floor(30 * rng.pareto(1.2, 3_000))
    later = np.floor(30 * rng.pareto(1.2, 800))
    later[:3] = [0, train.max() * 10, train.max() * 100]   # beyond anything seen in training
    cases: list[tuple[str, Any, Any, dict]] = [
        ("heavy-tailed counts (numpy arrays)", train, later, {}),
        ("the same counts with quantile=0.9", train, later, {"quantile": 0.9}),
        ("heavy-tailed counts as pandas Series", pd.Series(train[:1_000]), pd.Series(later[:200]), {}),
    ]
    if train_values is not None and values is not None:
        cases.append(("the lab's column (training days -> test days)", train_values, values, {}))
    return cases


def check_log_clip_standardize(log_clip_standardize: Callable, train_values: Any = None,
                               values: Any = None) -> None:
    """Check ``log_clip_standardize(train_values, values, quantile=0.99) -> array``."""
    name = "log_clip_standardize"
    for description, train, later, kwargs in _transform_cases(train_values, values):
        quantile = kwargs.get("quantile", 0.99)
        expected = _log_clip_standardize(train, later, quantile)
        got = _call(log_clip_standardize, train.copy(), later.copy(), **kwargs)
        try:
            got = np.asarray(got, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise AssertionError(f"{name} should return numbers, one per value, got {type(got).__name__}") from None
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected {expected.size} values (one per row of `values`), "
                                 f"got {got.size}.")
        if np.allclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        later_logs = np.log1p(np.asarray(later, dtype=float))
        train_logs = np.log1p(np.asarray(train, dtype=float))
        low, high = np.quantile(train_logs, [1 - quantile, quantile])
        hint = ("log1p, then clip to the [1 - quantile, quantile] quantiles of the training logs, then "
                "subtract the mean and divide by the std of the clipped training logs.")
        if np.allclose(got, _log_clip_standardize(later, later, quantile)):
            hint = ("Your statistics come from `values` (the later rows): fit the quantiles, mean and std on "
                    "`train_values` only, as a served model never sees the future.")
        elif np.allclose(got, _log_clip_standardize(train, later, quantile, ddof=1)):
            hint = "Use numpy's standard deviation with ddof=0 (np.std), not pandas' default ddof=1."
        elif np.allclose(got, (later_logs - train_logs.mean()) / train_logs.std()):
            hint = "The values are not clipped: clip to the training quantiles before standardizing."
        elif np.allclose(got, (np.clip(later_logs, low, high) - train_logs.mean()) / train_logs.std()):
            hint = "Compute the mean and std of the *clipped* training logs, so the outliers do not set them."
        elif np.allclose(got, (np.clip(later_logs, low, high) - low) / (high - low)):
            hint = "That is min-max scaling to [0, 1]: standardize with the mean and std instead."
        elif np.nanmax(np.abs(got)) > 1e3:
            hint = "Some outputs are huge: did you take log1p of the counts first?"
        raise AssertionError(f"On {description} the transformed values differ. {hint}")
    _correct(f"{name} uses training statistics only and tames the tail on "
             f"{len(_transform_cases(train_values, values))} cases.")


# ------------------------------------------------------------------------- MMoE gate (lab 4)
def _gate_cases() -> list[tuple[str, Any, Any]]:
    """(description, expert_outputs (B, E, H), gate_logits (B, E))."""
    import torch

    generator = torch.Generator().manual_seed(11)
    cases = []
    for batch, experts, width in [(4, 2, 3), (32, 4, 8), (5, 3, 1)]:
        outputs = torch.randn(batch, experts, width, generator=generator)
        logits = 3 * torch.randn(batch, experts, generator=generator)
        cases.append((f"{batch} rows, {experts} experts of width {width}", outputs, logits))
    outputs, logits = cases[1][1], cases[1][2]
    cases.append(("gate logits shifted by a constant per row (the mix must not change)",
                  outputs, logits + 100 * torch.arange(32.0).unsqueeze(1)))
    return cases


def check_mix_experts(mix_experts: Callable) -> None:
    """Check ``mix_experts(expert_outputs, gate_logits) -> (B, H)``: softmax over experts, weighted sum."""
    import torch

    name = "mix_experts"
    wrong = {
        "The gate weights must be a softmax over the *experts* (dim=1 of the logits), one distribution per row.":
            lambda o, g: (torch.softmax(g, dim=0).unsqueeze(-1) * o).sum(dim=1),
        "Use a softmax of the gate logits, not the raw logits, as weights.":
            lambda o, g: (g.unsqueeze(-1) * o).sum(dim=1),
        "That is the plain average of the experts: weight each by the task's gate.":
            lambda o, g: o.mean(dim=1),
        "Sum the weighted experts (over dim=1), do not average them.":
            lambda o, g: (torch.softmax(g, dim=1).unsqueeze(-1) * o).mean(dim=1),
    }
    for description, outputs, logits in _gate_cases():
        inputs = (outputs.clone(), logits.clone())
        got = _call(mix_experts, *inputs)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = (torch.softmax(logits, dim=1).unsqueeze(-1) * outputs).sum(dim=1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} (rows, width), "
                                 f"got {tuple(got.shape)}.")
        if torch.allclose(got, expected, rtol=1e-5, atol=1e-6):
            continue
        hint = "weights = softmax(gate_logits over the experts); output = sum over experts of weight * expert output."
        for text, fn in wrong.items():
            candidate = fn(outputs, logits)
            if candidate.shape == got.shape and torch.allclose(got, candidate, rtol=1e-5, atol=1e-6):
                hint = text
                break
        if not torch.isfinite(got).all():
            hint = "Some outputs are not finite: exp() of large logits overflows, use torch.softmax."
        raise AssertionError(f"On {description} the mix differs. {hint}")
    _correct(f"{name} mixes the experts with a softmax gate on {len(_gate_cases())} cases.")


# --------------------------------------------------------------- weight for a target share (lab 4)
def check_weight_for_share(weight_for_share: Callable, share_at: Callable, target: float) -> None:
    """Check ``weight_for_share(share_at, target) -> weight``: the smallest weight whose share reaches target.

    ``share_at(weight)`` must be non-decreasing in ``weight`` on [0, 20].
    """
    name = "weight_for_share"
    crafted = [
        ("a straight line, share = 0.2 + 0.03 * w", lambda w: 0.2 + 0.03 * w, 0.35, 5.0),
        ("a curve that flattens, share = 0.5 - 0.3 * exp(-w / 4)", lambda w: 0.5 - 0.3 * math.exp(-w / 4), 0.4,
         4 * math.log(3.0)),
        ("steps of 0.05 every whole weight", lambda w: 0.2 + 0.05 * math.floor(w), 0.35, 3.0),
    ]
    for description, share, goal, expected in crafted:
        got = _as_float(_call(weight_for_share, share, goal), name)
        if abs(got - expected) <= 0.02 and share(got) >= goal - 1e-9:
            continue
        hint = "Search [0, 20] for the smallest weight w with share_at(w) >= target (bisection works)."
        if share(got) < goal - 1e-9:
            hint = f"At your weight the share is {share(got):.3f}, below the target {goal}: search further right."
        elif got > expected:
            hint = "The share reaches the target at a smaller weight: return the smallest one, not any one."
        raise AssertionError(f"On {description} with target {goal}: expected a weight near {expected:.3f}, "
                             f"got {got:.3f}. {hint}")
    got = _as_float(_call(weight_for_share, share_at, target), name)
    reached = share_at(got)
    if reached < target - 1e-9:
        raise AssertionError(f"On the lab's ranking your weight {got:.3f} gives a share of {reached:.3f}, "
                             f"below the target {target}.")
    if got > 0.05 and share_at(max(0.0, got - 0.05)) >= target:
        raise AssertionError(f"On the lab's ranking a weight of {got - 0.05:.3f} already reaches the target: "
                             "return the smallest weight that does.")
    _correct(f"{name} finds the smallest weight that reaches a target share ({len(crafted)} crafted curves, "
             f"and {got:.2f} on the lab's ranking).")


# ------------------------------------------------------------------ routing to towers (lab 5)
def check_route_to_tower(route_to_tower: Callable) -> None:
    """Check ``route_to_tower(tower_logits (B, S), surface (B,)) -> (B,)``: each row's own tower."""
    import torch

    name = "route_to_tower"
    generator = torch.Generator().manual_seed(21)
    cases = []
    for batch, n_surfaces in [(6, 3), (50, 3), (7, 5)]:
        logits = torch.randn(batch, n_surfaces, generator=generator)
        surface = torch.randint(0, n_surfaces, (batch,), generator=generator)
        surface[:n_surfaces] = torch.arange(n_surfaces)          # every tower is used
        cases.append((f"{batch} rows, {n_surfaces} towers", logits, surface))
    wrong = {
        "That is tower 0 for every row: use each row's surface.": lambda t, s: t[:, 0],
        "That averages the towers: each row must get its own surface's tower only.": lambda t, s: t.mean(dim=1),
        "That is the largest tower output, not the row's own surface's.": lambda t, s: t.max(dim=1).values,
    }
    for description, logits, surface in cases:
        got = _call(route_to_tower, logits.clone(), surface.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"{name} should return a torch.Tensor, got {type(got).__name__}")
        expected = logits.gather(1, surface.unsqueeze(1)).squeeze(1)
        if got.shape != expected.shape:
            raise AssertionError(f"On {description}: expected shape {tuple(expected.shape)} (one logit per row), "
                                 f"got {tuple(got.shape)}.")
        if torch.allclose(got, expected):
            continue
        hint = "Row b's output is tower_logits[b, surface[b]] (torch.gather or advanced indexing)."
        for text, fn in wrong.items():
            candidate = fn(logits, surface)
            if candidate.shape == got.shape and torch.allclose(got, candidate):
                hint = text
                break
        raise AssertionError(f"On {description} the routed logits differ. {hint}")
    _correct(f"{name} gives every row its own surface's tower on {len(cases)} cases.")


# --------------------------------------------------------------------- per-surface gap (lab 5)
def _surface_gaps(probs, oracle, surface, priors) -> dict:
    probs, oracle, surface = (np.asarray(a) for a in (probs, oracle, surface))
    gaps = {}
    for code, prior in priors.items():
        rows = surface == code
        truth, q = oracle[rows].astype(float), np.clip(probs[rows].astype(float), 1e-7, 1 - 1e-7)
        loss = lambda p: float(-(truth * np.log(p) + (1 - truth) * np.log1p(-p)).mean())
        base = loss(np.full(rows.sum(), prior))
        gaps[code] = (base - loss(q)) / (base - loss(np.clip(truth, 1e-7, 1 - 1e-7)))
    return gaps


def check_surface_gaps(surface_gaps: Callable, probs: Any = None, oracle: Any = None, surface: Any = None,
                       priors: dict | None = None) -> None:
    """Check ``surface_gaps(probs, oracle, surface, priors) -> {surface: gap closed}`` (expected log loss)."""
    name = "surface_gaps"
    rng = np.random.default_rng(5)
    n = 3_000
    crafted_surface = rng.integers(0, 3, n)
    crafted_oracle = 1 / (1 + np.exp(-rng.normal(-3.5 + crafted_surface, 1.0, n)))
    crafted_probs = np.clip(crafted_oracle * rng.uniform(0.6, 1.4, n), 1e-4, 0.999)
    crafted_priors = {0: 0.03, 1: 0.07, 2: 0.15}
    cases = [("crafted surfaces", crafted_probs, crafted_oracle, crafted_surface, crafted_priors)]
    if probs is not None:
        cases.append(("the lab's test days", probs, oracle, surface, priors))
    for description, p, o, s, pr in cases:
        got = _call(surface_gaps, p.copy(), o.copy(), s.copy(), dict(pr))
        expected = _surface_gaps(p, o, s, pr)
        if not isinstance(got, dict) or set(got) != set(expected):
            raise AssertionError(f"{name} should return a dict keyed by the surfaces in `priors` "
                                 f"({sorted(expected)}), got {got!r}")
        for code, value in expected.items():
            value_got = _as_float(got[code], f"{name}()[{code}]")
            if _close(value_got, value, rel=1e-5, abs_=1e-7):
                continue
            hint = ("Per surface: gap = (E[LL](base rate) - E[LL](model)) / (E[LL](base rate) - E[LL](oracle)), "
                    "E[LL](q) = mean of -[p log q + (1 - p) log(1 - q)] with p the oracle, on that surface's rows.")
            rows = np.asarray(s) == code
            pooled = float(np.mean([pr[c] for c in pr]))
            if _close(value_got, _surface_gaps(p, o, s, {c: pooled for c in pr})[code], rel=1e-5):
                hint = "Use each surface's own base rate from `priors`, not one rate for all."
            elif _close(value_got, 1 - value, rel=1e-5):
                hint = "That is the share of the gap still open: measure how far the model got from the base rate."
            elif rows.sum() and _close(value_got, _surface_gaps(p[rows], o[rows], np.zeros(rows.sum()),
                                                                 {0: float(np.mean(o[rows]))})[0], rel=1e-5):
                hint = "The base rate is the surface's training rate in `priors`, not the mean of the oracle."
            raise AssertionError(f"On {description}, surface {code}: expected {value:.5f}, got {value_got:.5f}. {hint}")
    _correct(f"{name} matches the per-surface gap closed on {len(cases)} cases.")
