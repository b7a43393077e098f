"""Helpers shared by the store tests (row factories, a reference history sampler)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def score(user: str, risk: float, minutes: float = 0.0, model: str = "1", **extra: object) -> dict:
    """One score row for ``user`` with features as of ``T0 + minutes``."""
    return {
        "user_id": user,
        "risk": risk,
        "model_version": model,
        "features_time": T0 + timedelta(minutes=minutes),
        **extra,
    }


def reference_history(
    batches: list[list[dict]], interval_s: float
) -> tuple[dict[str, dict], set[tuple]]:
    """A plain loop over the documented rules: (current score per user, history points).

    Row by row, in order: a row replaces the user's current score unless that one has
    newer features; the history keeps per (user, interval) the row with the newest
    ``features_time`` (the later row on a tie). Interval k holds times in
    [k * interval_s, (k + 1) * interval_s) seconds since the epoch.
    """
    state: dict[str, dict] = {}
    points: dict[tuple, dict] = {}
    for batch in batches:
        for r in batch:
            u, t = r["user_id"], r["features_time"]
            if u not in state or t >= state[u]["features_time"]:
                state[u] = r
            key = (u, int(t.timestamp() // interval_s))
            if key not in points or t >= points[key]["features_time"]:
                points[key] = r
    return state, {
        (u, r["features_time"], r["risk"], r["model_version"]) for (u, _), r in points.items()
    }


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)
