"""Hypothesis strategies: small random event logs with out-of-order arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from pipeline import events as ev

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
USERS = ("a", "b", "c", "d")
ACTIONS = ("view", "cart", "buy")  # a declared vocabulary for activity events
PLANS = ev.PLANS
# arrival delay of an event after its own time: mostly in order, some late (some beyond a day)
DELAYS = (0, 0, 0, 0, 0, 1, HOUR_US, 6 * HOUR_US, 30 * HOUR_US, 3 * DAY_US)
# sub-hour offsets that hit the day boundaries exactly (00:00:00 belongs to the day before)
SUBS = (0, 0, 1, 59_999_999, 1_800_000_000)


def make(kind: str, user: str, ts: datetime, x: float, a: int, b: int, seq: int) -> ev.Event:
    common = {"event_id": f"e{seq}", "user_id": user, "ts": ts, "schema_version": 1}
    if kind == "signup":
        return ev.Signup(**common, plan=PLANS[a])
    if kind == "session":
        return ev.Session(**common, watch_minutes=round(x, 1), device="tv")
    if kind == "payment":
        return ev.Payment(**common, amount=round(x / 10, 2), plan=PLANS[a])
    if kind == "payment_failed":
        return ev.PaymentFailed(**common, amount=round(x / 10, 2), reason="card_expired")
    if kind == "plan_change":
        to = b if b != a else (a + 1) % 3
        return ev.PlanChange(**common, from_plan=PLANS[a], to_plan=PLANS[to])
    if kind == "support_ticket":
        return ev.SupportTicket(**common, category="billing")
    if kind == "activity":
        return ev.Activity(**common, action=ACTIONS[a], value=round(x, 2) if b else None)
    return ev.Cancel(**common, reason="voluntary" if a else "involuntary")


KINDS = st.sampled_from(
    ["session"] * 6 + ["signup", "signup", "payment", "payment_failed", "plan_change", "support_ticket", "cancel"]
)

# with source-defined actions: activity events are the most common kind
ACTIVITY_KINDS = st.sampled_from(
    ["activity"] * 6 + ["session"] * 2 + ["signup", "signup", "payment", "support_ticket", "cancel"]
)


def _raw(kinds: st.SearchStrategy) -> st.SearchStrategy:
    return st.tuples(
        kinds,
        st.sampled_from(USERS),
        st.integers(0, 45 * 24),  # hour since T0
        st.sampled_from(SUBS) | st.integers(0, HOUR_US - 1),
        st.floats(0.5, 300.0),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from(DELAYS),
    )


_raw_event = _raw(KINDS)


@st.composite
def event_logs(draw: st.DrawFn, min_size: int = 1, max_size: int = 60, activity: bool = False) -> list[ev.Event]:
    """Events in *arrival* order: time order perturbed by random delays (``activity``: mostly
    ``activity`` events of :data:`ACTIONS`)."""
    raw = draw(st.lists(_raw(ACTIVITY_KINDS) if activity else _raw_event, min_size=min_size, max_size=max_size))
    events, keys = [], []
    for seq, (kind, user, hour, sub, x, a, b, delay) in enumerate(raw):
        ts_us = hour * HOUR_US + sub
        events.append(make(kind, user, T0 + timedelta(microseconds=ts_us), x, a, b, seq))
        keys.append((ts_us + delay, seq))
    order = sorted(range(len(events)), key=lambda i: keys[i])
    return [events[i] for i in order]


lateness = st.sampled_from([timedelta(0), timedelta(hours=6), timedelta(hours=24), timedelta(days=3)])
