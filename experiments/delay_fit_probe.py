"""Why the delayed-feedback model over-corrects on some generator worlds: its delay fit.

    .venv/bin/python experiments/delay_fit_probe.py --worlds 0 1 2 3 4

On chapter 7's log of each world (the claim 10 test's: ``book`` scale,
conversions 10% of clicks), ``fit_delay_distribution`` fits the conversion rate
and the delay mixture to the clicks before the cutoff, as the test and the
chapter do. This records, per world, the fitted and the planted delay CDF at a
few delays, the fitted and the true conversion rate, and the mean of F(hours
waited) over those clicks under each: the share of their conversions reported
by the cutoff. A delayed-feedback model trained through the fitted F predicts
about (true mean F) / (fitted mean F) times what it would with the planted one.
The clicks have waited at most the log's length before the cutoff, while the
slowest delays are longer: the data fix the rate times F(t) for the waits they
hold, not the rate and F's tail apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "claims"))
from machine import write_result  # noqa: E402
from test_claims_6_10_calibration import CHAPTER_7  # noqa: E402

from ranking.delayed import DelayDistribution, fit_delay_distribution  # noqa: E402
from ranking.features import time_split  # noqa: E402
from ranking.simulate import load_or_simulate  # noqa: E402

NAME = "delay_fit_probe"
HOURS = (1, 24, 72, 168, 336, 504)


def probe_world(world: int) -> dict:
    logs = load_or_simulate(CHAPTER_7, seed=world)
    train_frame, valid_frame, test_frame = time_split(logs.impressions, valid_days=2, test_days=2)
    cutoff = float(test_frame["timestamp"].min())
    clicks = pd.concat([train_frame, valid_frame])
    clicks = clicks[clicks["click"] == 1]
    waited = (cutoff - clicks["timestamp"].to_numpy()) / 3600
    reported = clicks["conversion_timestamp"].to_numpy() <= cutoff
    delay = np.where(reported, (clicks["conversion_timestamp"] - clicks["timestamp"]).to_numpy() / 3600,
                     np.nan)
    fitted, rate = fit_delay_distribution(waited, delay, 24.0 * CHAPTER_7.attribution_days)
    planted = DelayDistribution.of_config(CHAPTER_7)
    hours = np.array(HOURS, dtype=float)
    mean_fitted, mean_planted = float(fitted.cdf(waited).mean()), float(planted.cdf(waited).mean())
    return {"world": world, "clicks": int(len(clicks)), "reported": int(reported.sum()),
            "longest_wait_hours": float(waited.max()),
            "fitted_rate": float(rate), "true_rate": float(clicks["p_conversion"].mean()),
            "fitted_cdf": dict(zip(map(str, HOURS), map(float, fitted.cdf(hours)))),
            "planted_cdf": dict(zip(map(str, HOURS), map(float, planted.cdf(hours)))),
            "mean_F_waited_fitted": mean_fitted, "mean_F_waited_planted": mean_planted,
            "expected_overcorrection": mean_planted / mean_fitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    worlds = [probe_world(world) for world in args.worlds]
    for row in worlds:
        print(f"world {row['world']}: mean F(waited) fitted {row['mean_F_waited_fitted']:.3f}, planted "
              f"{row['mean_F_waited_planted']:.3f} -> x{row['expected_overcorrection']:.2f}; rate fitted "
              f"{row['fitted_rate']:.4f}, true {row['true_rate']:.4f}")
    print(write_result(NAME, {"hours": list(HOURS), "worlds": worlds}, __file__))


if __name__ == "__main__":
    main()
