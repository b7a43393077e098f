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
    batches: list[list[dict]], min_change: float, max_interval_s: float
) -> tuple[dict[str, dict], set[tuple]]:
    """A plain loop over the documented rules: (current score per user, history points).

    Per batch: one row per user (newest ``features_time``, then the last given); a row
    older than the stored score is skipped; a point is written for a new user, or when
    risk moved > ``min_change`` since the user's last point, or the model changed, or
    the last point is >= ``max_interval_s`` older; an existing point key is kept.
    """
    state: dict[str, dict] = {}
    points: dict[tuple, tuple] = {}
    for batch in batches:
        latest: dict[str, dict] = {}
        for r in batch:
            u = r["user_id"]
            if u not in latest or r["features_time"] >= latest[u]["features_time"]:
                latest[u] = r
        for u, r in latest.items():
            old = state.get(u)
            if old is not None and r["features_time"] < old["features_time"]:
                continue
            sampled = (
                old is None
                or abs(r["risk"] - old["history_risk"]) > min_change
                or r["model_version"] != old["model_version"]
                or (r["features_time"] - old["history_time"]).total_seconds() >= max_interval_s
            )
            new = {**r}
            if sampled:
                new["history_time"], new["history_risk"] = r["features_time"], r["risk"]
                points.setdefault((u, r["features_time"]), (r["risk"], r["model_version"]))
            else:
                new["history_time"], new["history_risk"] = old["history_time"], old["history_risk"]
            state[u] = new
    return state, {(u, t, *v) for (u, t), v in points.items()}


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)
