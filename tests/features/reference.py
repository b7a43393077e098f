"""The slow, obviously-correct reference: plain loops over event objects, no rings, no numpy.

It restates the definitions of ``pipeline/features/registry.py`` directly:

* events are taken in arrival order; an event is late (dropped) when its time is more
  than ``lateness`` before the largest time accepted so far;
* the day of an instant is ``(us - 1) // DAY`` (right-closed days), the as-of day of ``t``
  is the day of ``t``; a W-day window is the days ``td - W + 1 .. td``;
* "latest" plan / charge = the event with the largest time, ties to the later arrival;
* active at ``t`` = a signup was seen and the latest signup is after the latest cancel;
* the batch replay reads cutoff ``t`` just before the first record (in arrival order)
  whose time is after ``t``;
* label = a cancel in ``(t, t + H]``; a cutoff is labelled when ``t + H <= last event time``;
* per declared action (``activity`` events, :func:`action_features`): counts over the last
  1/7/14/30 days, the 30-day count per day with any declared action, the 7-vs-7-day trend,
  days since the last one (since signup if none, 0 if neither).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from pipeline import events as ev

DAY = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PLAN_INDEX = {"basic": 0, "standard": 1, "premium": 2}
LIST_PRICE = {0: 7.99, 1: 13.99, 2: 19.99}


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def day(u: int) -> int:
    return (u - 1) // DAY


def accept(events: list[ev.Event], lateness_us: int) -> tuple[list[tuple[int, ev.Event]], list[int]]:
    """(accepted (arrival index, event) pairs, indices of late events)."""
    watermark = None
    kept, late = [], []
    for i, e in enumerate(events):
        t = us(e.ts)
        if watermark is not None and t < watermark - lateness_us:
            late.append(i)
            continue
        kept.append((i, e))
        watermark = t if watermark is None else max(watermark, t)
    return kept, late


def features(kept: list[tuple[int, ev.Event]], user: str, t: int) -> tuple[dict[str, float], bool]:
    """(feature dict, active) of ``user`` at ``t`` from accepted events (all must be <= t)."""
    mine = [(i, e) for i, e in kept if e.user_id == user]
    assert all(us(e.ts) <= t for _, e in mine), "reference: reading before the watermark"
    td = day(t)

    def on(e: ev.Event, first_back: int, last_back: int) -> bool:
        return td - last_back <= day(us(e.ts)) <= td - first_back

    sessions = [e for _, e in mine if isinstance(e, ev.Session)]

    def n_sessions(a: int, b: int) -> int:
        return sum(1 for e in sessions if on(e, a, b))

    def minutes(a: int, b: int) -> float:
        return sum(e.watch_minutes for e in sessions if on(e, a, b))

    def count(kind: type, w: int, extra=lambda e: True) -> int:
        return sum(1 for _, e in mine if isinstance(e, kind) and on(e, 0, w - 1) and extra(e))

    signups = [us(e.ts) for _, e in mine if isinstance(e, ev.Signup)]
    cancels = [us(e.ts) for _, e in mine if isinstance(e, ev.Cancel)]
    signup = max(signups) if signups else None
    since = max(1, td - day(signup) + 1) if signup is not None else 30

    def observed(w: int) -> int:
        return min(w, since)

    s7, s14, s30 = n_sessions(0, 6), n_sessions(0, 13), n_sessions(0, 29)
    w7, w14, w30 = minutes(0, 6), minutes(0, 13), minutes(0, 29)
    active_days = {day(us(e.ts)) for e in sessions}
    n = observed(14)
    slope = 0.0
    if n >= 2:
        xs = list(range(n))  # oldest .. as-of day
        ys = [minutes(n - 1 - x, n - 1 - x) for x in xs]
        xbar = sum(xs) / n
        slope = sum((x - xbar) * y for x, y in zip(xs, ys, strict=True)) / sum((x - xbar) ** 2 for x in xs)
    if sessions:
        since_session = (t - max(us(e.ts) for e in sessions)) / DAY
    elif signup is not None:
        since_session = (t - signup) / DAY
    else:
        since_session = 0.0
    plan_events = [
        (us(e.ts), i, PLAN_INDEX[e.to_plan if isinstance(e, ev.PlanChange) else e.plan])
        for i, e in mine if isinstance(e, ev.Signup | ev.Payment | ev.PlanChange)
    ]
    plan = max(plan_events)[2] if plan_events else -1
    charges = [(us(e.ts), i, e) for i, e in mine if isinstance(e, ev.Payment | ev.PaymentFailed)]
    last_charge = max(charges, key=lambda c: (c[0], c[1]))[2] if charges else None
    if last_charge is not None:
        price = last_charge.amount
    else:
        price = LIST_PRICE[plan] if plan >= 0 else 0.0

    def down(e: ev.PlanChange) -> bool:
        return PLAN_INDEX[e.to_plan] < PLAN_INDEX[e.from_plan]

    f = {
        "sessions_7d": s7, "sessions_14d": s14, "sessions_30d": s30,
        "sessions_per_day_7d": s7 / observed(7), "sessions_per_day_30d": s30 / observed(30),
        "watch_per_day_7d": w7 / observed(7), "watch_per_day_14d": w14 / observed(14),
        "watch_per_day_30d": w30 / observed(30),
        "watch_per_session_7d": w7 / s7 if s7 else 0.0, "watch_per_session_30d": w30 / s30 if s30 else 0.0,
        "active_days_7d": sum(1 for d in active_days if td - 6 <= d <= td),
        "active_days_30d": sum(1 for d in active_days if td - 29 <= d <= td),
        "sessions_trend_7v7": math.log((1 + s7) / (1 + n_sessions(7, 13))),
        "watch_trend_7v7": math.log((1 + w7) / (1 + minutes(7, 13))),
        "watch_slope_14d": slope,
        "watch_today": minutes(0, 0), "watch_lag_1d": minutes(1, 1), "watch_lag_2d": minutes(2, 2),
        "days_since_last_session": since_session,
        "payments_30d": count(ev.Payment, 30), "payments_failed_30d": count(ev.PaymentFailed, 30),
        "last_payment_failed": 1.0 if isinstance(last_charge, ev.PaymentFailed) else 0.0,
        "tickets_7d": count(ev.SupportTicket, 7), "tickets_30d": count(ev.SupportTicket, 30),
        "downgrades_30d": count(ev.PlanChange, 30, down),
        "upgrades_30d": count(ev.PlanChange, 30, lambda e: not down(e)),
        "tenure_days": (t - signup) / DAY if signup is not None else 0.0,
        "plan_tier": float(plan), "plan_price": price,
    }
    active = signup is not None and signup > max(cancels, default=-(2**63))
    return {k: float(v) for k, v in f.items()}, active


def snapshot_rows(
    partitions: list[list[ev.Event]], cutoffs: list[int], horizon_days: int, lateness_us: int,
    actions: tuple[str, ...] = (),
) -> dict[tuple[str, int], tuple[dict[str, float], int]]:
    """(user, cutoff) -> (features, label) for every user active at every labelled cutoff."""
    all_events = [e for part in partitions for e in part]
    end = max(us(e.ts) for e in all_events)
    cancels = [(e.user_id, us(e.ts)) for e in all_events if isinstance(e, ev.Cancel)]
    rows = {}
    for part in partitions:
        for t in cutoffs:
            if t + horizon_days * DAY > end:
                continue
            prefix = []
            for e in part:
                if us(e.ts) > t:
                    break
                prefix.append(e)
            kept, _ = accept(prefix, lateness_us)
            for user in sorted({e.user_id for _, e in kept}):
                f, active = features(kept, user, t)
                if actions:
                    f |= action_features(kept, user, t, actions)
                if active:
                    label = int(any(u == user and t < c <= t + horizon_days * DAY for u, c in cancels))
                    rows[(user, t)] = (f, label)
    return rows


def action_features(kept: list[tuple[int, ev.Event]], user: str, t: int, actions: tuple[str, ...]) -> dict[str, float]:
    """The action block of ``user`` at ``t`` (see ``pipeline/features/spec.py``), plainly."""
    mine = [e for _, e in kept if e.user_id == user]
    td = day(t)
    acts = [e for e in mine if isinstance(e, ev.Activity) and e.action in actions]
    signups = [us(e.ts) for e in mine if isinstance(e, ev.Signup)]

    def n(name: str, first_back: int, last_back: int) -> int:
        return sum(1 for e in acts if e.action == name and td - last_back <= day(us(e.ts)) <= td - first_back)

    days = {day(us(e.ts)) for e in acts}
    days30 = sum(1 for d in days if td - 29 <= d <= td)
    out = {"activity_days_7d": sum(1 for d in days if td - 6 <= d <= td), "activity_days_30d": days30}
    for a in actions:
        c30 = n(a, 0, 29)
        times = [us(e.ts) for e in acts if e.action == a]
        if times:
            since = (t - max(times)) / DAY
        elif signups:
            since = (t - max(signups)) / DAY
        else:
            since = 0.0
        out |= {
            f"act_{a}_1d": n(a, 0, 0), f"act_{a}_7d": n(a, 0, 6), f"act_{a}_14d": n(a, 0, 13), f"act_{a}_30d": c30,
            f"act_{a}_per_active_day_30d": c30 / days30 if days30 else 0.0,
            f"act_{a}_trend_7v7": math.log((1 + n(a, 0, 6)) / (1 + n(a, 7, 13))),
            f"act_{a}_days_since_last": since,
        }
    return {k: float(v) for k, v in out.items()}
