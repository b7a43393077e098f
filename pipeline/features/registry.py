"""The feature registry: every feature's name, meaning, window, kind and default, in one place.

The engine's read kernel fills columns in exactly this order (it looks the indices up
here by name), the snapshot table uses these names, and :data:`FEATURE_SET_VERSION`
hashes these definitions plus :data:`ENGINE_VERSION`, so a model trained on one feature
set is refused by a stream computing another.

Conventions (see :mod:`pipeline.features.timebase`): features at time ``t`` use the
events with ``ts <= t``. ``Wd`` windows are the W right-closed days ending with the as-of
day (the day containing ``t``), i.e. exactly ``(t - W days, t]`` at a midnight cutoff.
"Observed days" of a window are its days on or after the user's signup day (at least 1;
all W when no signup was seen), so a user who joined 3 days ago and watched 3 sessions
has ``sessions_per_day_7d == 1``, not ``3 / 7``.

Defaults are what a user with no such events gets; they are never NaN. A brand-new user
(only a signup) has zeros everywhere except ``tenure_days``/``days_since_last_session``
(time since signup), ``plan_tier`` and ``plan_price``.

>>> FEATURE_NAMES[:3]
('sessions_7d', 'sessions_14d', 'sessions_30d')
>>> len(FEATURE_SET_VERSION)
16
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Final, Literal

ENGINE_VERSION: Final = 1  # bump on any change of the engine's semantics or state layout
WINDOWS: Final = (7, 14, 30)
MAX_WINDOW: Final = max(WINDOWS)
# Catalogue (list) price per plan, index = position in pipeline.events.PLANS; used for
# plan_price before a user's first charge.
PLAN_LIST_PRICES: Final = (7.99, 13.99, 19.99)

Kind = Literal["count", "rate", "minutes", "ratio", "days", "flag", "category", "money"]


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    window_days: int | None  # None: not a window feature
    kind: Kind
    default: float  # value when the user has no events of the kind the feature reads


def _f(name: str, description: str, window: int | None, kind: Kind, default: float = 0.0) -> Feature:
    return Feature(name, description, window, kind, default)


FEATURES: Final[tuple[Feature, ...]] = (
    # engagement: counts and per-observed-day averages
    _f("sessions_7d", "sessions in the last 7 days", 7, "count"),
    _f("sessions_14d", "sessions in the last 14 days", 14, "count"),
    _f("sessions_30d", "sessions in the last 30 days", 30, "count"),
    _f("sessions_per_day_7d", "sessions_7d / observed days of the 7-day window", 7, "rate"),
    _f("sessions_per_day_30d", "sessions_30d / observed days of the 30-day window", 30, "rate"),
    _f("watch_per_day_7d", "watch minutes in the last 7 days / observed days", 7, "minutes"),
    _f("watch_per_day_14d", "watch minutes in the last 14 days / observed days", 14, "minutes"),
    _f("watch_per_day_30d", "watch minutes in the last 30 days / observed days", 30, "minutes"),
    _f("watch_per_session_7d", "watch minutes per session, last 7 days (0 without sessions)", 7, "minutes"),
    _f("watch_per_session_30d", "watch minutes per session, last 30 days (0 without sessions)", 30, "minutes"),
    _f("active_days_7d", "days with at least one session, last 7 days", 7, "count"),
    _f("active_days_30d", "days with at least one session, last 30 days", 30, "count"),
    # trend
    _f("sessions_trend_7v7", "ln((1 + sessions in days 1-7) / (1 + sessions in days 8-14)); < 0 = fading", 14, "ratio"),
    _f("watch_trend_7v7", "ln((1 + watch minutes in days 1-7) / (1 + watch minutes in days 8-14))", 14, "ratio"),
    _f("watch_slope_14d", "least-squares slope of daily watch minutes over the observed days of the last 14 (min/day per day; 0 with < 2 observed days)", 14, "minutes"),
    # lags (day 0 = the as-of day)
    _f("watch_today", "watch minutes on the as-of day (the 24 h before a midnight cutoff)", 1, "minutes"),
    _f("watch_lag_1d", "watch minutes on the day before the as-of day", 2, "minutes"),
    _f("watch_lag_2d", "watch minutes two days before the as-of day", 3, "minutes"),
    _f("days_since_last_session", "days since the last session; since signup if none; 0 if neither seen", None, "days"),
    # billing
    _f("payments_30d", "successful payments in the last 30 days", 30, "count"),
    _f("payments_failed_30d", "failed payments in the last 30 days", 30, "count"),
    _f("last_payment_failed", "1 if the latest charge attempt failed, else 0 (0 before any charge)", None, "flag"),
    # support and plan
    _f("tickets_7d", "support tickets in the last 7 days", 7, "count"),
    _f("tickets_30d", "support tickets in the last 30 days", 30, "count"),
    _f("downgrades_30d", "plan changes to a cheaper plan in the last 30 days", 30, "count"),
    _f("upgrades_30d", "plan changes to a dearer plan in the last 30 days", 30, "count"),
    _f("tenure_days", "days since the latest signup (0 if no signup seen)", None, "days"),
    _f("plan_tier", "current plan: 0 basic, 1 standard, 2 premium (latest signup/payment/plan change); -1 unknown", None, "category", -1.0),
    _f("plan_price", "amount of the latest charge attempt; before any, the list price of the current plan; 0 if unknown", None, "money"),
)

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
FEATURE_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(FEATURE_NAMES)}
N_FEATURES: Final = len(FEATURES)


def _version() -> str:
    payload = json.dumps(
        {"engine": ENGINE_VERSION, "prices": PLAN_LIST_PRICES, "features": [asdict(f) for f in FEATURES]},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


FEATURE_SET_VERSION: Final = _version()


def describe() -> list[dict[str, object]]:
    """The registry as plain rows (for docs, the CLI and model metadata)."""
    return [asdict(f) for f in FEATURES]
