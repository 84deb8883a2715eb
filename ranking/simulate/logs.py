"""Draw the observed ad log from the hidden world: impressions, labels, oracle, events.

Every label is drawn from a probability computed here, and that probability is
kept in the log as an oracle column (``p_click``, ...). A model can never beat
the oracle on average; how much of the gap between the base-rate predictor and
the oracle a model closes is the book's yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import checks
from .config import SURFACES, AdLogConfig
from .world import SECONDS_PER_DAY, World, build_world, search_sorted

USER_ENGAGEMENT_WINDOW_DAYS = 7


@dataclass
class AdLogs:
    """One generated ad log: what a real ads team would have in its warehouse.

    ``impressions`` carries the observed features and labels and, unlike a real
    log, the true probabilities (oracle columns) every label was drawn from.
    """

    impressions: pd.DataFrame
    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    advertisers: pd.DataFrame
    item_embeddings: np.ndarray  # (n_items, pretrained_dim) noisy pretrained vectors
    config: AdLogConfig
    seed: int
    searches: pd.DataFrame | None = None
    """Each user's search queries (user_id, category, timestamp); None when the
    config's ``searches_per_day`` is 0."""

    def __repr__(self) -> str:
        return (f"AdLogs(seed={self.seed}, impressions={len(self.impressions):,}, "
                f"events={len(self.events):,}, users={len(self.users):,}, "
                f"items={len(self.items):,}, advertisers={len(self.advertisers):,})")


def simulate(config: AdLogConfig | None = None, seed: int = 0) -> AdLogs:
    """Generate a full ad log; the same config and seed give identical frames."""
    config = config if config is not None else AdLogConfig()
    if not isinstance(config, AdLogConfig):
        raise TypeError(f"config must be an AdLogConfig, got {type(config).__name__}")
    checks.nonnegative_int("seed", seed)
    # A fourth stream for the search log: the first three are the same with or without it.
    world_rng, events_rng, impressions_rng, searches_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4))

    world = build_world(config, world_rng)
    events = _engagement_events(config, world, events_rng)
    searches = _search_queries(config, world, searches_rng)
    impressions = _impressions(config, world, events, impressions_rng, searches, searches_rng)
    return AdLogs(
        impressions=impressions,
        events=events,
        users=_users_frame(world),
        items=_items_frame(world),
        advertisers=_advertisers_frame(world),
        item_embeddings=world.item_pretrained,
        config=config,
        seed=int(seed),
        searches=searches,
    )


def surface_codes(surface: pd.Series) -> np.ndarray:
    """Each row's surface as its index in SURFACES, whatever the column's dtype."""
    if isinstance(surface.dtype, pd.CategoricalDtype) and list(surface.cat.categories) == list(SURFACES):
        return surface.cat.codes.to_numpy()
    unknown = set(surface.astype(str).unique()) - set(SURFACES)
    if unknown:
        raise ValueError(f"unknown surface(s) {sorted(unknown)}: allowed {SURFACES}")
    return pd.Categorical(surface.astype(str), categories=list(SURFACES)).codes



# ----------------------------------------------------------------------------- events
def _engagement_events(c: AdLogConfig, world: World, rng: np.random.Generator) -> pd.DataFrame:
    """Each user's organic engagement stream, mostly from their current interest.

    For every event the user looks at a few candidate items, from the current
    interest or popular ones, and engages with one picked by long-term taste;
    the better liked the item, the stronger the action (closeup < click < save).
    So the events reveal both the short-term interest and the long-term taste.
    """
    start_seconds = -c.history_days * SECONDS_PER_DAY
    end_seconds = c.n_days * SECONDS_PER_DAY
    total_days = c.history_days + c.n_days
    n_events = rng.poisson(c.events_per_day * total_days * world.user_activity)
    user = np.repeat(np.arange(c.n_users), n_events)
    timestamp = rng.integers(start_seconds, end_seconds, user.size)
    # users are already grouped: sorting one (user, time) key orders time within user
    order = np.argsort(user * np.int64(end_seconds - start_seconds) + (timestamp - start_seconds),
                       kind="stable")
    user, timestamp = user[order], timestamp[order]

    current, _ = world.interests.current_and_previous(user, timestamp)
    from_interest = rng.random(user.size) < c.sequence_purity
    item, taste = _engaged_items(c, world, user, current, from_interest, rng)
    action = _actions(c, taste, rng)
    return pd.DataFrame({
        "user_id": user.astype(np.int64),
        "item_id": item.astype(np.int64),
        "action": action.astype(np.int8),
        "timestamp": timestamp.astype(np.int64),
    })


def _search_queries(c: AdLogConfig, world: World, rng: np.random.Generator
                    ) -> pd.DataFrame | None:
    """Each user's search queries, as the category searched for (None without searches).

    A query is about the current interest with probability ``search_purity``,
    else an errand in a random category: search reveals intent the feed does not.
    """
    if c.searches_per_day == 0:
        return None
    start_seconds = -c.history_days * SECONDS_PER_DAY
    total_days = c.history_days + c.n_days
    n_queries = rng.poisson(c.searches_per_day * total_days * world.user_activity)
    user = np.repeat(np.arange(c.n_users), n_queries)
    timestamp = rng.integers(start_seconds, c.n_days * SECONDS_PER_DAY, user.size)
    order = np.lexsort((timestamp, user))
    user, timestamp = user[order], timestamp[order]
    current, _ = world.interests.current_and_previous(user, timestamp)
    about_interest = rng.random(user.size) < c.search_purity
    errand = rng.integers(0, c.n_categories, user.size)
    return pd.DataFrame({
        "user_id": user.astype(np.int64),
        "category": np.where(about_interest, current, errand).astype(np.int64),
        "timestamp": timestamp.astype(np.int64),
    })


def latest_query(searches: pd.DataFrame, user: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """The category of each user's latest query at or before each time (-1: none yet).

    ``searches`` is sorted by (user, time), as ``simulate`` makes it.
    """
    span = np.int64(10 * 365 * SECONDS_PER_DAY)
    keys = searches["user_id"].to_numpy() * span + searches["timestamp"].to_numpy() + span // 2
    query = np.asarray(user, dtype=np.int64) * span + np.asarray(timestamp) + span // 2
    position = search_sorted(keys, query, side="right") - 1
    same_user = (position >= 0) & (
        searches["user_id"].to_numpy()[np.maximum(position, 0)] == user)
    return np.where(same_user, searches["category"].to_numpy()[np.maximum(position, 0)], -1)


EVENT_CHUNK = 200_000
"""Events whose candidates are scored at once (bounds memory at the gpu scale)."""


def _engaged_items(c: AdLogConfig, world: World, user: np.ndarray, current: np.ndarray,
                   from_interest: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The item each event engages with, and the user's taste for it.

    The user looks at ``event_candidates`` items (of the current category, or
    popular ones) and picks one with probability proportional to
    exp(event_taste_strength * taste), taste being the user x item affinity that
    also drives ad clicks (drawn with the Gumbel-max trick).
    """
    k = c.event_candidates
    taste_vectors = world.user_latent * world.task_directions["click"]      # (U, d)
    items = np.empty(user.size, dtype=np.int64)
    tastes = np.empty(user.size, dtype=np.float64)
    for start in range(0, user.size, EVENT_CHUNK):
        rows = slice(start, start + EVENT_CHUNK)
        m = user[rows].size
        in_interest = _items_in_categories(rng, world, np.repeat(current[rows], k))
        popular = _popular_items(rng, world, m * k)
        candidates = np.where(from_interest[rows, None], in_interest.reshape(m, k),
                              popular.reshape(m, k))                           # (m, k)
        taste = c.affinity_scale * np.einsum(
            "md,mkd->mk", taste_vectors[user[rows]], world.item_latent[candidates])
        pick = np.argmax(c.event_taste_strength * taste + rng.gumbel(size=(m, k)), axis=1)
        items[rows] = candidates[np.arange(m), pick]
        tastes[rows] = taste[np.arange(m), pick]
    return items, tastes


ACTION_SHARES = (0.5, 0.35, 0.15)
"""Shares of closeups, clicks and saves among engagement events."""


def _actions(c: AdLogConfig, taste: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """closeup / click / save (0 / 1 / 2) in fixed shares, stronger for better-liked items."""
    standardized = (taste - taste.mean()) / (taste.std() + 1e-12)
    score = c.event_action_strength * standardized + rng.logistic(size=taste.size)
    cuts = np.quantile(score, np.cumsum(ACTION_SHARES)[:-1])
    return np.searchsorted(cuts, score, side="right")


def _popular_items(rng: np.random.Generator, world: World, size: int) -> np.ndarray:
    """Items drawn with probability growing with their popularity."""
    weight = np.sqrt(world.item_save_count + 1.0)
    return rng.choice(weight.size, size=size, p=weight / weight.sum())


def _items_in_categories(rng: np.random.Generator, world: World,
                         categories: np.ndarray) -> np.ndarray:
    """One uniformly drawn item of each requested category (vectorized)."""
    by_category = np.argsort(world.item_category, kind="stable")
    counts = np.bincount(world.item_category, minlength=world.item_category.max() + 1)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offset = np.floor(rng.random(categories.size) * counts[categories]).astype(np.int64)
    return by_category[first[categories] + offset]


# ------------------------------------------------------------------------ impressions
def _impressions(c: AdLogConfig, world: World, events: pd.DataFrame,
                 rng: np.random.Generator, searches: pd.DataFrame | None = None,
                 searches_rng: np.random.Generator | None = None) -> pd.DataFrame:
    n = c.n_impressions
    user = rng.choice(c.n_users, size=n, p=world.user_activity / world.user_activity.sum())
    timestamp = rng.integers(0, c.n_days * SECONDS_PER_DAY, n)
    order = np.argsort(timestamp, kind="stable")
    user, timestamp = user[order], timestamp[order]
    surface = rng.choice(len(SURFACES), size=n, p=[c.surface_traffic[s] for s in SURFACES])

    item, matches_interest = _retrieve_items(c, world, user, timestamp, rng)
    matches_query = None
    if searches is not None:
        query = latest_query(searches, user, timestamp)
        item = _retrieve_for_queries(c, world, surface, query, item, searches_rng)
        current, _ = world.interests.current_and_previous(user, timestamp)
        matches_interest = world.item_category[item] == current
        matches_query = (query >= 0) & (world.item_category[item] == query)
    features = _observed_features(c, world, events, user, item, surface, timestamp, rng)
    logit = click_logit(c, world, user, item, surface, timestamp, matches_interest, features,
                        matches_query)
    labels, oracle, conversion_timestamp = _draw_labels(
        c, world, user, item, surface, timestamp, matches_interest, logit, rng)
    _apply_outage(c, features, timestamp)

    frame = pd.DataFrame({
        "impression_id": np.arange(n, dtype=np.int64),
        "user_id": user.astype(np.int64),
        "item_id": item.astype(np.int64),
        "advertiser_id": world.item_advertiser[item].astype(np.int64),
        "surface": pd.Categorical.from_codes(surface, categories=list(SURFACES)),
        "timestamp": timestamp.astype(np.int64),
        "is_video": world.item_is_video[item].astype(np.int8),
    })
    for name, values in features.items():
        frame[name] = values
    for name, values in labels.items():
        frame[name] = values.astype(np.int8)
    frame["conversion_timestamp"] = conversion_timestamp
    for name, values in oracle.items():
        frame[name] = values.astype(np.float32)
    return frame


def _retrieve_items(c: AdLogConfig, world: World, user: np.ndarray, timestamp: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Candidate generation: some items from the user's current interest, some from
    the previous (stale) one, the rest by popularity. Returns items and whether
    each matches the *current* interest."""
    current, previous = world.interests.current_and_previous(user, timestamp)
    source = rng.random(user.size)
    from_current = source < c.retrieval_current_share
    from_previous = ~from_current & (source < c.retrieval_current_share
                                     + c.retrieval_previous_share) & (previous >= 0)
    category = np.where(from_previous, previous, current)
    item = np.where(from_current | from_previous,
                    _items_in_categories(rng, world, category),
                    _popular_items(rng, world, user.size))
    return item, world.item_category[item] == current


def _retrieve_for_queries(c: AdLogConfig, world: World, surface: np.ndarray,
                          query: np.ndarray, item: np.ndarray,
                          rng: np.random.Generator) -> np.ndarray:
    """On search, a share of the candidates come from the latest query's category."""
    draw = rng.random(item.size)
    from_query = ((surface == SURFACES.index("search")) & (query >= 0)
                  & (draw < c.search_retrieval_share))
    in_query = _items_in_categories(rng, world, np.maximum(query, 0))
    return np.where(from_query, in_query, item)


def _observed_features(c: AdLogConfig, world: World, events: pd.DataFrame,
                       user: np.ndarray, item: np.ndarray, surface: np.ndarray,
                       timestamp: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dense features a real ranking team would log with each impression."""
    related_pins, search = SURFACES.index("related_pins"), SURFACES.index("search")
    features = {
        "user_follower_count": world.user_follower_count[user],
        "user_engagement_count": _recent_event_counts(events, user, timestamp),
        "item_save_count": world.item_save_count[item].copy(),
        "item_age_days": (timestamp / SECONDS_PER_DAY - world.item_created_day[item]
                          ).astype(np.float32),
        "advertiser_budget": world.advertiser_budget[world.item_advertiser[item]
                                                     ].astype(np.float32),
        # Observable relevance scores that exist on one surface only.
        "context_similarity": np.where(surface == related_pins,
                                       rng.beta(2.0, 2.0, user.size), 0.0).astype(np.float32),
        "query_match": np.where(surface == search,
                                rng.beta(1.5, 1.5, user.size), 0.0).astype(np.float32),
    }
    return features


def _apply_outage(c: AdLogConfig, features: dict[str, np.ndarray], timestamp: np.ndarray) -> None:
    """A logging bug: the feature reads 0 during the outage window. The truth
    (and so the oracle) is untouched: only what a model sees goes stale."""
    start = c.outage_start_day * SECONDS_PER_DAY
    end = start + c.outage_days * SECONDS_PER_DAY
    in_outage = (timestamp >= start) & (timestamp < end)
    features[c.outage_feature][in_outage] = 0


def _recent_event_counts(events: pd.DataFrame, user: np.ndarray,
                         timestamp: np.ndarray) -> np.ndarray:
    """Events of the user in the 7 days before each impression (two searchsorted)."""
    span = np.int64(10 * 365 * SECONDS_PER_DAY)
    event_keys = events["user_id"].to_numpy() * span + events["timestamp"].to_numpy() + span // 2
    query = user.astype(np.int64) * span + timestamp + span // 2
    window = USER_ENGAGEMENT_WINDOW_DAYS * SECONDS_PER_DAY
    upto_now = search_sorted(event_keys, query)
    upto_window_start = search_sorted(event_keys, query - window)
    return (upto_now - upto_window_start).astype(np.int64)


def affinity(c: AdLogConfig, world: World, user: np.ndarray, item: np.ndarray,
              task: str) -> np.ndarray:
    """w_task . (u_user * v_item): the user x item taste only IDs can reveal."""
    interaction = world.user_latent[user] * world.item_latent[item]   # (N, d)
    return c.affinity_scale * (interaction @ world.task_directions[task])


def click_logit(c: AdLogConfig, world: World, user: np.ndarray, item: np.ndarray,
                surface: np.ndarray, timestamp: np.ndarray,
                matches_interest: np.ndarray,
                features: dict[str, np.ndarray],
                matches_query: np.ndarray | None = None) -> np.ndarray:
    """The true click logit without its per-surface intercept.

    Each term is one planted effect, with its knob in ``AdLogConfig``; the
    surface decides how strongly the user x item affinity and item popularity
    count, and which relevance score (context pin, query) exists at all.
    ``matches_query`` (a log with searches only): whether the ad is in the
    category of the user's latest query, which counts on search.
    """
    # one value per surface, looked up for each row with [surface] below
    affinity_scale = np.array([c.surface_affinity_scale[s] for s in SURFACES])
    popularity_effect = np.array([c.surface_popularity_effect[s] for s in SURFACES])
    shift = np.array([c.surface_shift[s] for s in SURFACES])
    after_shift = timestamp >= c.shift_day * SECONDS_PER_DAY
    popularity = _log_z(world.item_save_count)[item]
    engagement = np.log1p(features["user_engagement_count"])
    hour = (timestamp % SECONDS_PER_DAY) / 3600.0
    context, query = features["context_similarity"], features["query_match"]
    advertiser = world.item_advertiser[item]
    return (
        affinity_scale[surface] * affinity(c, world, user, item, "click")
        + c.short_term_effect * matches_interest
        + popularity_effect[surface] * popularity
        + c.engagement_effect * (engagement - engagement.mean())
        + c.follower_effect * _log_z(world.user_follower_count)[user]
        + world.item_quality[item]
        + c.advertiser_effect * world.advertiser_quality[advertiser]
        + c.video_click_effect * world.item_is_video[item]
        + c.hour_effect * np.sin(2 * np.pi * (hour - c.peak_hour) / 24.0)
        + c.context_effect * _centered(context) * (context > 0)
        + c.query_effect * _centered(query) * (query > 0)
        + shift[surface] * after_shift
        + (0.0 if matches_query is None else c.search_intent_effect
           * matches_query * (surface == SURFACES.index("search")))
    )


def _centered(score: np.ndarray) -> np.ndarray:
    """A relevance score in [0, 1] moved to [-1, 1]: 0.5, an average match, adds nothing."""
    return 2.0 * (score - 0.5)


def _log_z(counts: np.ndarray) -> np.ndarray:
    logs = np.log1p(counts)
    return (logs - logs.mean()) / (logs.std() + 1e-12)


def _draw_labels(c: AdLogConfig, world: World, user: np.ndarray, item: np.ndarray,
                 surface: np.ndarray, timestamp: np.ndarray, matches_interest: np.ndarray,
                 click_logit: np.ndarray, rng: np.random.Generator):
    """Probabilities of every task, the labels drawn from them, conversion times."""
    p_click = np.empty(user.size)
    for code, name in enumerate(SURFACES):
        on_surface = surface == code
        p_click[on_surface] = _sigmoid_at_mean(click_logit[on_surface], c.surface_ctr[name])
    click = rng.random(user.size) < p_click

    is_video = world.item_is_video[item]
    quality = world.item_quality[item]
    advertiser = world.item_advertiser[item]
    good_logit = (affinity(c, world, user, item, "good_click")
                  + c.video_good_click_effect * is_video + 0.5 * quality
                  + 0.5 * c.short_term_effect * matches_interest)
    save_logit = (affinity(c, world, user, item, "save") + c.video_save_effect * is_video
                  + 0.5 * c.short_term_effect * matches_interest + 0.3 * quality)
    hide_logit = affinity(c, world, user, item, "hide") - 0.5 * quality
    conversion_logit = (affinity(c, world, user, item, "conversion")
                        + world.user_buying_intent[user]
                        + world.advertiser_quality[advertiser])

    # good click and conversion happen after a click: rates are per click.
    p_good_given_click = _sigmoid_at_mean(good_logit, c.good_click_share, weights=p_click)
    p_save = _sigmoid_at_mean(save_logit, c.save_rate)
    p_hide = _sigmoid_at_mean(hide_logit, c.hide_rate)
    p_true_conversion = _sigmoid_at_mean(conversion_logit, c.conversion_rate, weights=p_click)

    good_click = click & (rng.random(user.size) < p_good_given_click)
    save = rng.random(user.size) < p_save
    hide = rng.random(user.size) < p_hide
    true_conversion = click & (rng.random(user.size) < p_true_conversion)

    report_rate = world.advertiser_report_rate[advertiser]
    false_report_rate = world.advertiser_false_report_rate[advertiser]
    reported = np.where(true_conversion,
                        rng.random(user.size) < report_rate,
                        click & (rng.random(user.size) < false_report_rate))
    p_conversion = p_true_conversion * report_rate + (1 - p_true_conversion) * false_report_rate

    delay_hours = conversion_delays(rng, c, user.size)
    conversion_timestamp = np.where(reported, timestamp + 3600.0 * delay_hours, np.nan)

    labels = {"click": click, "good_click": good_click, "save": save, "hide": hide,
              "conversion": reported, "true_conversion": true_conversion}
    oracle = {"p_click": p_click, "p_good_click": p_click * p_good_given_click,
              "p_save": p_save, "p_hide": p_hide, "p_conversion": p_conversion,
              "p_true_conversion": p_true_conversion}
    return labels, oracle, conversion_timestamp


def conversion_delays(rng: np.random.Generator, c: AdLogConfig, size: int) -> np.ndarray:
    """Click-to-conversion delays in hours: a mixture of exponentials cut at the
    attribution window (Chapelle 2014), sampled exactly by inverse CDF."""
    window_hours = 24.0 * c.attribution_days
    means = np.asarray(c.delay_mean_hours)
    inside_window = 1.0 - np.exp(-window_hours / means)          # P(delay < window | k)
    component_weights = np.asarray(c.delay_weights) * inside_window
    component = rng.choice(means.size, size=size, p=component_weights / component_weights.sum())
    mean = means[component]
    u = rng.random(size)
    return -mean * np.log1p(-u * inside_window[component])


def _sigmoid_at_mean(logit: np.ndarray, target: float, weights: np.ndarray | None = None
                     ) -> np.ndarray:
    """sigmoid(b + logit) with the intercept b solved so the (weighted) mean hits target.

    Newton's method on log(mean) - log(target): for rare events the mean is
    close to exp(b) * const, so this is nearly linear in b and converges in a
    handful of steps.
    """
    intercept = np.log(target / (1.0 - target)) - np.average(logit, weights=weights)
    for _ in range(30):
        p = _sigmoid(intercept + logit)
        mean = np.average(p, weights=weights)
        slope = np.average(p * (1.0 - p), weights=weights) / mean
        step = (np.log(mean) - np.log(target)) / slope
        intercept -= np.clip(step, -5.0, 5.0)
        if abs(step) < 1e-9:
            break
    return _sigmoid(intercept + logit)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------- entity tables
def _users_frame(world: World) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": np.arange(world.user_latent.shape[0], dtype=np.int64),
        "follower_count": world.user_follower_count,
    })


def _items_frame(world: World) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": np.arange(world.item_latent.shape[0], dtype=np.int64),
        "advertiser_id": world.item_advertiser.astype(np.int64),
        "category": world.item_category.astype(np.int64),
        "is_video": world.item_is_video.astype(np.int8),
        "save_count": world.item_save_count,
        "created_day": world.item_created_day.astype(np.float32),
    })


def _advertisers_frame(world: World) -> pd.DataFrame:
    """Advertisers, with their (normally hidden) reporting behaviour for teaching."""
    return pd.DataFrame({
        "advertiser_id": np.arange(world.advertiser_quality.size, dtype=np.int64),
        "budget": world.advertiser_budget.astype(np.float32),
        "report_rate": world.advertiser_report_rate.astype(np.float32),
        "false_report_rate": world.advertiser_false_report_rate.astype(np.float32),
    })
