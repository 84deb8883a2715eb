"""Wrong answers that need the lab's own data, so the checks' catalogue cannot hold them.

The known mistakes live with the checks, in ranking/labcheck/mistakes/. The few here are
built from the namespace of the solution notebook once it has run (``lab``): each takes
that namespace and returns the wrong function, for tests/test_labs.py to check.
"""

from __future__ import annotations

from typing import Callable


def hard_coded_surface(lab: dict) -> Callable:
    """The answer of the lab's own log, returned whatever log comes in."""
    clicks = lab["impressions"].groupby("surface", observed=True)["click"]
    answer = str(clicks.mean().idxmax())

    def highest_ctr_surface(impressions):
        return answer
    return highest_ctr_surface


WRONG_ANSWERS: dict[str, list[Callable[[dict], Callable]]] = {
    "highest_ctr_surface": [hard_coded_surface],
}
