"""The hidden truth of the synthetic ad world: users, items, advertisers, interests.

Nothing here is observed by a model directly. Logs (``logs.py``) are drawn from
this world; a model sees only the logged IDs and features, while the oracle
columns of the log are computed from these latent quantities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TASKS, AdLogConfig

SECONDS_PER_DAY = 86_400


@dataclass
class World:
    """Latent quantities of every user, item and advertiser."""

    user_latent: np.ndarray          # (U, d) long-term taste
    user_activity: np.ndarray        # (U,) relative activity, mean 1, heavy-tailed
    user_follower_count: np.ndarray  # (U,) heavy-tailed count
    user_buying_intent: np.ndarray   # (U,) shifts conversion only
    item_latent: np.ndarray          # (I, d)
    item_category: np.ndarray        # (I,) interest topic of the item
    item_is_video: np.ndarray        # (I,) bool
    item_save_count: np.ndarray      # (I,) heavy-tailed popularity count
    item_quality: np.ndarray         # (I,)
    item_advertiser: np.ndarray      # (I,)
    item_created_day: np.ndarray     # (I,) may be negative (created before the log)
    item_true_vector: np.ndarray     # (I, P) unit vectors: the truth
    item_pretrained: np.ndarray      # (I, P) noisy observed embedding
    advertiser_quality: np.ndarray   # (advertisers,) shifts conversion
    advertiser_budget: np.ndarray    # (advertisers,) heavy-tailed daily budget
    advertiser_report_rate: np.ndarray       # (advertisers,) P(report | true conversion)
    advertiser_false_report_rate: np.ndarray  # (advertisers,) P(report | no conversion)
    task_directions: dict[str, np.ndarray]   # task -> (d,) unit vector
    interests: "InterestTimeline"


@dataclass
class InterestTimeline:
    """Each user's short-term interest: a category that jumps at random times.

    Stored flat and sorted by (user, start time), so the interest of many
    (user, time) pairs is found with one ``np.searchsorted``.
    """

    user: np.ndarray       # (S,) user of each segment
    start: np.ndarray      # (S,) segment start, seconds since the log start
    category: np.ndarray   # (S,) category the user is into during the segment
    span_seconds: int      # width of one user's slot in the search key

    def _key(self, user: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        offset = np.asarray(seconds, dtype=np.int64) + self.span_seconds // 2
        return np.asarray(user, dtype=np.int64) * self.span_seconds + offset

    def segment_at(self, user: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """Index of the segment each (user, time) pair falls in."""
        keys = self._key(self.user, self.start)
        return search_sorted(keys, self._key(user, seconds), side="right") - 1

    def current_and_previous(self, user: np.ndarray, seconds: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
        """Current category, and the one before it (-1 when there was none)."""
        segment = self.segment_at(user, seconds)
        current = self.category[segment]
        has_previous = (segment > 0) & (self.user[np.maximum(segment - 1, 0)] == user)
        previous = np.where(has_previous, self.category[np.maximum(segment - 1, 0)], -1)
        return current, previous


def search_sorted(keys: np.ndarray, queries: np.ndarray, side: str = "left") -> np.ndarray:
    """``np.searchsorted(keys, queries)`` for many unsorted queries, faster.

    Looking up queries in sorted order walks ``keys`` front to back and stays in
    cache; random order jumps around a large array. Same result either way.
    """
    order = np.argsort(queries, kind="stable")
    positions = np.empty(queries.shape, dtype=np.int64)
    positions[order] = np.searchsorted(keys, queries[order], side=side)
    return positions


def pareto_counts(rng: np.random.Generator, size: int, alpha: float, scale: float) -> np.ndarray:
    """Heavy-tailed non-negative integer counts (Lomax / Pareto II)."""
    return np.floor(scale * rng.pareto(alpha, size)).astype(np.int64)


def task_directions(rng: np.random.Generator, latent_dim: int, task_correlation: float,
                    hide_correlation: float) -> dict[str, np.ndarray]:
    """Unit vectors w_t with cos(w_click, w_t) set by the config (MMoE recipe).

    w_t = p * u_click + sqrt(1 - p^2) * u_t, with u_click and every u_t orthonormal.
    """
    if latent_dim < len(TASKS):
        basis = rng.standard_normal((latent_dim, latent_dim))
        basis, _ = np.linalg.qr(basis)
        # Not enough room for orthogonal task directions: reuse the rows cyclically.
        rows = [basis[i % latent_dim] for i in range(len(TASKS))]
    else:
        basis, _ = np.linalg.qr(rng.standard_normal((latent_dim, len(TASKS))))
        rows = list(basis.T)
    click_direction = rows[0]
    directions = {"click": click_direction}
    for task, own_direction in zip(TASKS[1:], rows[1:]):
        p = hide_correlation if task == "hide" else task_correlation
        directions[task] = p * click_direction + np.sqrt(1.0 - p**2) * own_direction
    return directions


def build_world(config: AdLogConfig, rng: np.random.Generator) -> World:
    """Draw every latent quantity of the world from ``rng``."""
    c = config
    d = c.latent_dim

    user_latent = rng.standard_normal((c.n_users, d)).astype(np.float32)
    user_activity = rng.lognormal(0.0, 0.8, c.n_users)
    user_activity /= user_activity.mean()
    user_follower_count = pareto_counts(rng, c.n_users, c.count_tail_alpha, 20.0)
    user_buying_intent = rng.normal(0.0, 0.5, c.n_users)

    item_latent = rng.standard_normal((c.n_items, d)).astype(np.float32)
    item_category = rng.integers(0, c.n_categories, c.n_items)
    item_category[: c.n_categories] = np.arange(c.n_categories)  # no empty category
    item_is_video = rng.random(c.n_items) < c.video_share
    item_save_count = pareto_counts(rng, c.n_items, c.count_tail_alpha, 50.0)
    popularity_z = _standardize(np.log1p(item_save_count))
    item_quality = 0.3 * popularity_z + rng.normal(0.0, 0.3, c.n_items)
    item_advertiser = rng.integers(0, c.n_advertisers, c.n_items)
    item_advertiser[: c.n_advertisers] = np.arange(c.n_advertisers)  # each owns an item
    item_created_day = rng.uniform(-60.0, c.n_days, c.n_items)

    item_true_vector, item_pretrained = _pretrained_embeddings(
        rng, item_latent, item_category, c.n_categories, c.pretrained_dim, c.pretrained_cosine)

    advertiser_quality = rng.normal(0.0, 0.4, c.n_advertisers)
    advertiser_budget = 10.0 * (1.0 + pareto_counts(rng, c.n_advertisers, c.count_tail_alpha, 30.0))
    advertiser_report_rate = 1.0 - c.advertiser_noise * rng.beta(2.0, 3.0, c.n_advertisers)
    misfiring_pixel = rng.random(c.n_advertisers) < 0.2
    advertiser_false_report_rate = (
        c.advertiser_noise * 0.05 * misfiring_pixel * rng.random(c.n_advertisers))

    return World(
        user_latent=user_latent,
        user_activity=user_activity,
        user_follower_count=user_follower_count,
        user_buying_intent=user_buying_intent,
        item_latent=item_latent,
        item_category=item_category,
        item_is_video=item_is_video,
        item_save_count=item_save_count,
        item_quality=item_quality,
        item_advertiser=item_advertiser,
        item_created_day=item_created_day,
        item_true_vector=item_true_vector,
        item_pretrained=item_pretrained,
        advertiser_quality=advertiser_quality,
        advertiser_budget=advertiser_budget,
        advertiser_report_rate=advertiser_report_rate,
        advertiser_false_report_rate=advertiser_false_report_rate,
        task_directions=task_directions(rng, d, c.task_correlation, c.hide_correlation),
        interests=_interest_timeline(rng, c),
    )


def _standardize(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def _pretrained_embeddings(rng: np.random.Generator, item_latent: np.ndarray,
                           item_category: np.ndarray, n_categories: int, dim: int,
                           cosine: float) -> tuple[np.ndarray, np.ndarray]:
    """True item vectors (latent taste + category) and noisy copies at a target cosine.

    Gaussian noise of per-coordinate scale sigma added to a unit vector in R^dim
    has norm about sigma * sqrt(dim), so cos ~= 1 / sqrt(1 + dim * sigma^2).
    """
    projection = rng.standard_normal((item_latent.shape[1], dim)) / np.sqrt(dim)
    category_centroids = rng.standard_normal((n_categories, dim)) / np.sqrt(dim)
    truth = item_latent @ projection + 2.0 * category_centroids[item_category]
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    sigma = np.sqrt((1.0 / cosine**2 - 1.0) / dim)
    noisy = truth + sigma * rng.standard_normal(truth.shape)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return truth.astype(np.float32), noisy.astype(np.float32)


def _interest_timeline(rng: np.random.Generator, c: AdLogConfig) -> InterestTimeline:
    """Every user starts in a random category and jumps at Poisson times."""
    start_seconds = -c.history_days * SECONDS_PER_DAY
    end_seconds = c.n_days * SECONDS_PER_DAY
    total_days = c.history_days + c.n_days
    n_jumps = rng.poisson(c.interest_switch_per_day * total_days, c.n_users)
    n_segments = n_jumps + 1
    user = np.repeat(np.arange(c.n_users), n_segments)
    start = rng.integers(start_seconds, end_seconds, user.size)
    first_of_user = np.concatenate([[0], np.cumsum(n_segments)[:-1]])
    start[first_of_user] = start_seconds
    order = np.lexsort((start, user))
    category = rng.integers(0, c.n_categories, user.size)
    span = 2 * (end_seconds - start_seconds) + 2 * SECONDS_PER_DAY * 365
    return InterestTimeline(user=user[order], start=start[order], category=category,
                            span_seconds=int(span))
