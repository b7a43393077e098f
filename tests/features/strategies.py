"""Hypothesis strategies: small random event logs with out-of-order arrival."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from pipeline import events as ev

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
USERS = ("a", "b", "c", "d")
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
    return ev.Cancel(**common, reason="voluntary" if a else "involuntary")


KINDS = st.sampled_from(
    ["session"] * 6 + ["signup", "signup", "payment", "payment_failed", "plan_change", "support_ticket", "cancel"]
)

_raw_event = st.tuples(
    KINDS,
    st.sampled_from(USERS),
    st.integers(0, 45 * 24),  # hour since T0
    st.sampled_from(SUBS) | st.integers(0, HOUR_US - 1),
    st.floats(0.5, 300.0),
    st.integers(0, 2),
    st.integers(0, 2),
    st.sampled_from(DELAYS),
)


@st.composite
def event_logs(draw: st.DrawFn, min_size: int = 1, max_size: int = 60) -> list[ev.Event]:
    """Events in *arrival* order: time order perturbed by random delays."""
    raw = draw(st.lists(_raw_event, min_size=min_size, max_size=max_size))
    events, keys = [], []
    for seq, (kind, user, hour, sub, x, a, b, delay) in enumerate(raw):
        ts_us = hour * HOUR_US + sub
        events.append(make(kind, user, T0 + timedelta(microseconds=ts_us), x, a, b, seq))
        keys.append((ts_us + delay, seq))
    order = sorted(range(len(events)), key=lambda i: keys[i])
    return [events[i] for i in order]


lateness = st.sampled_from([timedelta(0), timedelta(hours=6), timedelta(hours=24), timedelta(days=3)])
