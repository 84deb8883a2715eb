"""What only the generator knows, for the book's oracles: each impression's interest and taste.

The log keeps the true click probability of every impression. Chapter 6 asks
how much of it a model could reach *only* through the user's sequence: for
that it needs two parts of the true click logit that no logged feature shows,
the user's current interest (does the ad match it?) and the user x item taste.
They are rebuilt here from the log's config and seed (the world is
deterministic), and the click logit is re-scored with either part blinded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import SURFACES
from .logs import AdLogs, affinity, latest_query, surface_codes
from .world import World, build_world


def world_of(logs: AdLogs) -> World:
    """The hidden world the log was drawn from (rebuilt from its config and seed)."""
    world_rng = np.random.default_rng(np.random.SeedSequence(logs.seed).spawn(3)[0])
    return build_world(logs.config, world_rng)


def matches_interest(logs: AdLogs, frame: pd.DataFrame, world: World | None = None) -> np.ndarray:
    """Whether each impression's item is in the user's current interest category (bool, (N,))."""
    world = world if world is not None else world_of(logs)
    user, seconds = frame["user_id"].to_numpy(), frame["timestamp"].to_numpy()
    current, _ = world.interests.current_and_previous(user, seconds)
    return world.item_category[frame["item_id"].to_numpy()] == current


def matches_query(logs: AdLogs, frame: pd.DataFrame) -> np.ndarray:
    """Whether each impression is on search with its item in the category of the user's
    latest query: where the search intent lifts the click (bool, (N,); a log with searches)."""
    if logs.searches is None:
        raise ValueError("this log has no search queries (searches_per_day is 0)")
    query = latest_query(logs.searches, frame["user_id"].to_numpy(), frame["timestamp"].to_numpy())
    on_search = surface_codes(frame["surface"]) == SURFACES.index("search")
    return on_search & (logs.items["category"].to_numpy()[frame["item_id"].to_numpy()] == query)


def click_taste(logs: AdLogs, frame: pd.DataFrame, world: World | None = None) -> np.ndarray:
    """The user x item affinity term of each impression's click logit (surface scale included)."""
    world = world if world is not None else world_of(logs)
    c = logs.config
    surface = surface_codes(frame["surface"])
    scale = np.array([c.surface_affinity_scale[s] for s in SURFACES])[surface]
    return scale * affinity(c, world, frame["user_id"].to_numpy(), frame["item_id"].to_numpy(), "click")


def blind_oracle(logs: AdLogs, frame: pd.DataFrame, blind_to: str = "interest",
                 world: World | None = None) -> np.ndarray:
    """The true P(click) with one hidden part of its logit replaced by that part's average.

    blind_to="interest": the match with the current interest is replaced by its
    average rate, as a model that cannot see the user's recent events would
    have to; "taste": the user x item affinity term by its average; "query"
    (a log with searches): the search intent term, by its average on each
    surface (it exists on search only, where a global average would bias the
    blind oracle). The gap
    between the oracle and a blind oracle is what that part is worth.
    """
    world = world if world is not None else world_of(logs)
    logit = np.log(frame["p_click"].to_numpy(np.float64)) - np.log1p(-frame["p_click"].to_numpy(np.float64))
    if blind_to == "interest":
        part = logs.config.short_term_effect * matches_interest(logs, frame, world)
    elif blind_to == "taste":
        part = click_taste(logs, frame, world)
    elif blind_to == "query":
        part = logs.config.search_intent_effect * matches_query(logs, frame)
        surface = surface_codes(frame["surface"])
        average = np.bincount(surface, part, len(SURFACES)) / np.maximum(
            np.bincount(surface, minlength=len(SURFACES)), 1)
        return 1.0 / (1.0 + np.exp(-(logit - part + average[surface])))
    else:
        raise ValueError(f"blind_to must be 'interest', 'taste' or 'query', got {blind_to!r}")
    return 1.0 / (1.0 + np.exp(-(logit - part + part.mean())))
