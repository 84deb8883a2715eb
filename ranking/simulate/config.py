"""The knobs of the synthetic ad world, validated, with named presets.

Every planted effect of the generator has a field here, so a chapter can turn an
effect up, down or off and watch a model react. `AdLogConfig.preset(name)` gives
the three scales the book runs at: ``smoke`` (CI, seconds), ``book`` (the
default, about a million impressions on a laptop CPU) and ``gpu`` (about ten
times the book, for one GPU).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field

from .. import checks

SURFACES: tuple[str, ...] = ("home_feed", "related_pins", "search")
"""The three places an ad can be shown, in the order of their integer codes."""

TASKS: tuple[str, ...] = ("click", "good_click", "save", "hide", "conversion")
"""The labels every impression carries, in a fixed order."""

ACTIONS: tuple[str, ...] = ("closeup", "click", "save")
"""Engagement actions in a user's event history (codes 0, 1, 2)."""

SCALE_ENV_VAR = "RANKING_SCALE"
"""Environment variable that picks the preset for every notebook and test."""


def _per_surface(home_feed: float, related_pins: float, search: float) -> dict[str, float]:
    return {"home_feed": home_feed, "related_pins": related_pins, "search": search}


@dataclass(frozen=True)
class AdLogConfig:
    """Sizes and planted structure of one synthetic ad log.

    Rates are targets: the generator solves for the intercepts that hit them.
    """

    # --- sizes -------------------------------------------------------------
    n_users: int = 20_000
    n_items: int = 5_000
    n_advertisers: int = 500
    n_impressions: int = 1_200_000
    n_days: int = 14
    """Days covered by the impression log (the training/test time axis)."""
    history_days: int = 14
    """Days of engagement history before the log starts (fills the first sequences)."""
    n_categories: int = 40
    """Item categories (interest topics)."""

    # --- latent user x item affinity (reachable only through IDs) ----------
    latent_dim: int = 16
    affinity_scale: float = 1.0
    """Weight of the user x item latent interaction in the click logit."""

    # --- heavy-tailed counts ----------------------------------------------
    count_tail_alpha: float = 1.2
    """Pareto shape of count features (smaller = heavier tail)."""

    # --- tasks sharing latent directions ------------------------------------
    task_correlation: float = 0.8
    """cos(w_click, w_task) for good click, save and conversion (MMoE recipe)."""
    hide_correlation: float = -0.5
    """cos(w_click, w_hide): hiding an ad points away from clicking it."""

    # --- surfaces -----------------------------------------------------------
    surface_traffic: dict[str, float] = field(
        default_factory=lambda: _per_surface(0.65, 0.25, 0.10)
    )
    surface_ctr: dict[str, float] = field(
        default_factory=lambda: _per_surface(0.015, 0.025, 0.04)
    )
    surface_popularity_effect: dict[str, float] = field(
        default_factory=lambda: _per_surface(0.35, 0.10, -0.25)
    )
    """Coefficient of log item popularity in the click logit, per surface."""
    surface_shift: dict[str, float] = field(
        default_factory=lambda: _per_surface(0.0, 0.0, 0.0)
    )
    """Click-logit change per surface from ``shift_day`` on (a launch that moves a base rate)."""
    shift_day: float = 10.0
    """First day of the ``surface_shift`` (before it, every surface is as planted)."""
    surface_affinity_scale: dict[str, float] = field(
        default_factory=lambda: _per_surface(1.0, 0.7, 0.5)
    )
    """Multiplier of the user x item affinity, per surface."""
    context_effect: float = 1.2
    """Weight of context-pin similarity (related pins only)."""
    query_effect: float = 1.5
    """Weight of query match (search only)."""

    # --- the rest of the click logit -------------------------------------------
    engagement_effect: float = 0.25
    """Weight of the user's recent engagement (log of the 7-day event count, centered)."""
    follower_effect: float = 0.10
    """Weight of the user's follower count (log, standardized)."""
    advertiser_effect: float = 0.5
    """Weight of the advertiser's (hidden) quality."""
    hour_effect: float = 0.15
    """Amplitude of the daily cycle of the click logit."""
    peak_hour: float = 14.0
    """Hour of the day at which the daily cycle peaks."""

    # --- short-term interest and sequences ----------------------------------
    events_per_day: float = 4.0
    """Mean engagement events per user per day (heavy-tailed across users)."""
    interest_switch_per_day: float = 0.5
    """Rate at which a user's short-term interest jumps to a new category."""
    sequence_purity: float = 0.7
    """Share of a user's events that come from the current interest."""
    short_term_effect: float = 1.2
    """Click-logit boost when the item matches the user's current interest."""
    retrieval_current_share: float = 0.25
    """Share of impressions whose item is retrieved from the current interest."""
    retrieval_previous_share: float = 0.15
    """Share retrieved from the previous (stale) interest: no boost."""
    event_candidates: int = 8
    """Items a user looks at for each engagement event; taste picks the one engaged with."""
    event_taste_strength: float = 1.5
    """How strongly long-term taste picks the engaged item among the candidates (0: at random)."""
    event_action_strength: float = 1.5
    """How strongly taste sets the action: saves on the best-liked items (0: at random)."""

    # --- search queries: a third kind of user sequence (off by default) -------
    searches_per_day: float = 0.0
    """Mean search queries per user per day. 0 (the default): no search log, and every
    other table exactly as without these knobs (their random stream is a separate one)."""
    search_purity: float = 0.5
    """Share of queries about the current interest; the rest are errands, a random category."""
    search_intent_effect: float = 1.0
    """Click-logit boost on search when the ad is in the category of the user's latest query."""
    search_retrieval_share: float = 0.3
    """Share of search impressions retrieved from the latest query's category."""

    # --- pretrained item embeddings -----------------------------------------
    pretrained_dim: int = 64
    pretrained_cosine: float = 0.8
    """Cosine between a pretrained item embedding and the item's true vector."""

    # --- video vs image ------------------------------------------------------
    video_share: float = 0.3
    video_click_effect: float = -0.4
    video_save_effect: float = 0.6
    video_good_click_effect: float = 0.5

    # --- rates of the other tasks -------------------------------------------
    good_click_share: float = 0.4
    """P(good click | click), on average."""
    save_rate: float = 0.01
    hide_rate: float = 0.003
    conversion_rate: float = 0.03
    """P(conversion | click), on average (post-click CVR)."""

    # --- conversions: delays and advertiser-reported noise -------------------
    delay_weights: tuple[float, float, float] = (0.33, 0.17, 0.50)
    delay_mean_hours: tuple[float, float, float] = (0.25, 24.0, 336.0)
    attribution_days: float = 30.0
    """Conversions later than this after the click are never attributed (``inf``: no cutoff)."""
    advertiser_noise: float = 0.3
    """0 = every advertiser reports conversions exactly; 1 = very noisy reporting."""

    # --- feature outage -------------------------------------------------------
    outage_feature: str = "item_save_count"
    outage_start_day: float = 9.0
    outage_days: float = 1.0
    """The feature reads a constant 0 over this window (0 days disables it)."""

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ presets
    @classmethod
    def preset(cls, name: str, **overrides) -> "AdLogConfig":
        """Return the ``smoke``, ``moderate``, ``book`` or ``gpu`` configuration, with overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
        return dataclasses.replace(cls(), **{**PRESETS[name], **overrides})

    @classmethod
    def from_env(cls, default: str = "book", **overrides) -> "AdLogConfig":
        """The preset named by the ``RANKING_SCALE`` environment variable."""
        return cls.preset(os.environ.get(SCALE_ENV_VAR, default), **overrides)

    @classmethod
    def moderate_from_env(cls, default: str = "book", **overrides) -> "AdLogConfig":
        """A smaller log than ``from_env``'s, for experiments that train many models (seeds x settings).

        ``moderate`` (a third of the book's impressions over a third of its ids:
        the same data per id) at book scale, ``book`` at gpu scale, and the
        smoke log itself at smoke scale.
        """
        scale = os.environ.get(SCALE_ENV_VAR, default)
        if scale not in SMALLER_PRESET:
            raise ValueError(f"unknown preset {scale!r}: choose one of {sorted(PRESETS)}")
        return cls.preset(SMALLER_PRESET[scale], **overrides)

    def with_(self, **changes) -> "AdLogConfig":
        """A copy with some knobs changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short stable hash of every knob: the cache key of a generated log."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --------------------------------------------------------------- validation
    def _validate(self) -> None:
        self._validate_types()
        for name in ("n_users", "n_items", "n_advertisers", "n_impressions", "n_days",
                     "n_categories", "latent_dim", "pretrained_dim", "event_candidates"):
            checks.positive_int(name, getattr(self, name))
        checks.nonnegative_int("history_days", self.history_days)
        if self.n_advertisers > self.n_items:
            raise ValueError(
                f"n_advertisers must be <= n_items (each advertiser owns an item), "
                f"got {self.n_advertisers} > {self.n_items}"
            )
        if self.n_categories > self.n_items:
            raise ValueError(f"n_categories must be <= n_items, got {self.n_categories} > {self.n_items}")
        for name in ("task_correlation", "hide_correlation"):
            _check_range(name, getattr(self, name), -1.0, 1.0)
        for name in ("sequence_purity", "video_share", "advertiser_noise",
                     "retrieval_current_share", "retrieval_previous_share",
                     "search_purity", "search_retrieval_share"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        if self.retrieval_current_share + self.retrieval_previous_share > 1.0:
            raise ValueError(
                "retrieval_current_share + retrieval_previous_share must be <= 1, got "
                f"{self.retrieval_current_share + self.retrieval_previous_share}"
            )
        _check_range("pretrained_cosine", self.pretrained_cosine, 0.0, 1.0, open_low=True)
        for name in ("good_click_share", "save_rate", "hide_rate", "conversion_rate"):
            _check_range(name, getattr(self, name), 0.0, 1.0, open_low=True, open_high=True)
        for name in ("affinity_scale", "context_effect", "query_effect", "short_term_effect",
                     "interest_switch_per_day", "outage_days", "outage_start_day",
                     "event_taste_strength", "event_action_strength", "shift_day",
                     "searches_per_day", "search_intent_effect"):
            _check_range(name, getattr(self, name), 0.0)
        _check_range("count_tail_alpha", self.count_tail_alpha, 0.0, open_low=True)
        _check_range("peak_hour", self.peak_hour, 0.0, 24.0, open_high=True)
        _check_range("events_per_day", self.events_per_day, 0.0, open_low=True)
        _check_range("attribution_days", self.attribution_days, 0.0, open_low=True, allow_inf=True)
        self._validate_surfaces()
        self._validate_delays()
        if self.outage_feature not in OUTAGE_FEATURES:
            raise ValueError(
                f"outage_feature must be one of {OUTAGE_FEATURES}, got {self.outage_feature!r}"
            )

    def _validate_types(self) -> None:
        """Every knob has its declared type, and every float in it is finite.

        This walks all fields, so a knob added later is checked without being listed here: an
        int must be an int (not a bool), a float a real number, and so must each value of a
        ``dict[str, float]`` knob and each entry of a ``tuple[float, ...]`` knob. Only the knobs
        in ``INFINITE_KNOBS`` may be ``inf``. The ranges are checked after this, knob by knob.
        """
        for name, kind in _knob_types().items():
            value = getattr(self, name)
            origin = typing.get_origin(kind)
            if kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{name} must be an integer, got {value!r}")
            elif kind is float:
                _check_number(name, value, allow_inf=name in INFINITE_KNOBS)
            elif kind is str:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string, got {value!r}")
            elif origin is dict:
                if not isinstance(value, dict):
                    raise ValueError(f"{name} must be a dict keyed by surface, got {type(value).__name__}")
                for key, item in value.items():
                    _check_number(f"{name}[{key!r}]", item)
            elif origin is tuple:
                if not isinstance(value, tuple):
                    raise ValueError(f"{name} must be a tuple of numbers, got {type(value).__name__}")
                for i, item in enumerate(value):
                    _check_number(f"{name}[{i}]", item)
            else:
                raise TypeError(f"AdLogConfig.{name} has type {kind}, which _validate_types cannot check: "
                                "give it a rule there")

    def _validate_surfaces(self) -> None:
        for name in ("surface_traffic", "surface_ctr", "surface_popularity_effect",
                     "surface_shift", "surface_affinity_scale"):
            values = getattr(self, name)
            unknown = set(values) - set(SURFACES)
            if unknown:
                raise ValueError(f"{name} has unknown surface(s) {sorted(unknown)}: allowed {SURFACES}")
            missing = set(SURFACES) - set(values)
            if missing:
                raise ValueError(f"{name} is missing surface(s) {sorted(missing)}")
        for surface, share in self.surface_traffic.items():
            _check_range(f"surface_traffic[{surface!r}]", share, 0.0, 1.0)
        total = sum(self.surface_traffic.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"surface_traffic must sum to 1, got {total:.6f}")
        for surface, ctr in self.surface_ctr.items():
            _check_range(f"surface_ctr[{surface!r}]", ctr, 0.0, 1.0, open_low=True, open_high=True)
        for surface, scale in self.surface_affinity_scale.items():
            _check_range(f"surface_affinity_scale[{surface!r}]", scale, 0.0)

    def _validate_delays(self) -> None:
        if len(self.delay_weights) != len(self.delay_mean_hours):
            raise ValueError("delay_weights and delay_mean_hours must have the same length")
        for i, weight in enumerate(self.delay_weights):
            _check_range(f"delay_weights[{i}]", weight, 0.0, 1.0)
        if abs(sum(self.delay_weights) - 1.0) > 1e-6:
            raise ValueError(f"delay_weights must sum to 1, got {sum(self.delay_weights):.6f}")
        for i, mean in enumerate(self.delay_mean_hours):
            _check_range(f"delay_mean_hours[{i}]", mean, 0.0, open_low=True)


INFINITE_KNOBS: frozenset[str] = frozenset({"attribution_days"})
"""Float knobs for which ``inf`` means something: ``attribution_days=inf`` attributes every
conversion, however late. Every other float knob must be finite."""

OUTAGE_FEATURES: tuple[str, ...] = (
    "item_save_count", "user_follower_count", "user_engagement_count", "advertiser_budget",
)
"""Count features that an outage can freeze."""

PRESETS: dict[str, dict] = {
    "smoke": dict(n_users=2_000, n_items=1_000, n_advertisers=100, n_impressions=40_000,
                  n_categories=20),
    "moderate": dict(n_users=7_000, n_items=2_000, n_advertisers=200, n_impressions=400_000),
    "book": dict(),
    "gpu": dict(n_users=150_000, n_items=40_000, n_advertisers=4_000, n_impressions=12_000_000),
}
SMALLER_PRESET: dict[str, str] = {"smoke": "smoke", "moderate": "moderate", "book": "moderate", "gpu": "book"}
"""The preset ``AdLogConfig.moderate_from_env`` picks for each scale."""


@functools.cache
def _knob_types() -> dict[str, typing.Any]:
    """{field name: declared type} of AdLogConfig, resolved once (the annotations are strings)."""
    return typing.get_type_hints(AdLogConfig)


def _check_number(name: str, value, allow_inf: bool = False) -> None:
    """A real number (int or float, not bool), finite, or also ``+inf`` when ``allow_inf``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if math.isnan(value) or value == -math.inf or (value == math.inf and not allow_inf):
        raise ValueError(f"{name} must be a finite number{' or inf' if allow_inf else ''}, got {value!r}")


def _check_range(name: str, value, low: float, high: float = math.inf,
                 open_low: bool = False, open_high: bool = False, allow_inf: bool = False) -> None:
    """``value`` is a finite number (or ``inf`` when ``allow_inf``) between ``low`` and ``high``."""
    _check_number(name, value, allow_inf)
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if too_low or too_high:
        if high == math.inf:
            raise ValueError(f"{name} must be {'>' if open_low else '>='} {low}, got {value!r}")
        left = "(" if open_low else "["
        right = ")" if open_high else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")


PLANTED_EFFECTS: dict[str, str] = {
    "affinity_scale": "user x item latent taste, reachable only through ID embeddings",
    "count_tail_alpha": "Pareto shape of count features: the heavy tails log1p must tame",
    "task_correlation": "cos(w_click, w_task) of good click, save and conversion",
    "hide_correlation": "cos(w_click, w_hide): a task that conflicts with clicking",
    "surface_traffic": "share of impressions per surface",
    "surface_ctr": "base click rate per surface",
    "surface_popularity_effect": "how item popularity moves clicks, per surface",
    "surface_shift": "click-logit change per surface from shift_day on",
    "shift_day": "day the surface shift starts",
    "surface_affinity_scale": "how much personal taste matters, per surface",
    "engagement_effect": "how much a user's recent activity raises clicks",
    "follower_effect": "how much a user's follower count raises clicks",
    "advertiser_effect": "how much an advertiser's hidden quality raises clicks",
    "hour_effect": "amplitude of the daily click cycle",
    "peak_hour": "hour of the day when clicks peak",
    "interest_switch_per_day": "how fast the short-term interest drifts",
    "short_term_effect": "click boost when the item matches the current interest",
    "sequence_purity": "share of recent events that reveal the current interest",
    "event_candidates": "items a user looks at per engagement event",
    "event_taste_strength": "how strongly taste picks the engaged item (long-term taste in the sequence)",
    "event_action_strength": "how strongly taste sets the action (saves on the best-liked items)",
    "pretrained_cosine": "cosine of pretrained item embeddings to the truth",
    "video_share": "share of video items (different action profile)",
    "conversion_rate": "post-click conversion rate",
    "delay_weights": "mixture weights of the click-to-conversion delay",
    "delay_mean_hours": "mean delay of each mixture component (hours)",
    "advertiser_noise": "how noisily advertisers report conversions",
    "outage_feature": "feature that reads 0 during an outage window",
    "outage_start_day": "first day of the outage",
    "outage_days": "length of the outage (days)",
}
"""Each knob that plants an effect, with what it plants (shown in chapter 1)."""


def knob_table(config: AdLogConfig) -> list[tuple[str, str, str]]:
    """(knob, value as text, planted effect) rows for every planted-effect knob."""
    return [(name, _as_text(getattr(config, name)), effect)
            for name, effect in PLANTED_EFFECTS.items()]


def _as_text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {item:g}" for key, item in value.items())
    if isinstance(value, tuple):
        return ", ".join(f"{item:g}" for item in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
