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


def to_v7_history(store, interval_s: float = 86_400.0) -> None:
    """Rebuild the version-7 history layout in ``store``: the keyed ``score_history``
    table holding the points the store reads back now (``interval_s``: the policy they
    were written with), and no segments table, as a version-7 store had."""
    from sqlalchemy import text

    from pipeline.store import schema as s

    to_v8_scores(store)
    hist = store.score_history()
    step = int(interval_s * 1e6)
    with store._write() as conn:
        s.score_history.create(conn)
        t_us = hist["time"].dt.tz_localize(None).to_numpy().astype("datetime64[us]")
        b_us = (t_us.view("int64") - t_us.view("int64") % step).view("datetime64[us]")
        rows = [
            {"bucket": b, "user_id": u, "time": t, "risk": float(r), "model_version": m}
            for b, t, u, r, m in zip(store.codec.many(b_us), store.codec.many(t_us), hist.user_id,
                                     hist.risk, hist.model_version, strict=True)
        ]  # fmt: skip
        if rows:
            conn.execute(s.score_history.insert(), rows)
        conn.execute(text(f"DROP TABLE {store._bulk.table(s.score_history_segments)}"))


V8_SQLITE_SCORES = (
    "CREATE TABLE scores (user_id VARCHAR(200) NOT NULL, risk FLOAT NOT NULL, model_version VARCHAR(100) "
    "NOT NULL, features_time VARCHAR(32) NOT NULL, reasons JSON, plan VARCHAR(50), monthly_revenue FLOAT, "
    "partition INTEGER, updated_at VARCHAR(32) NOT NULL, active BOOLEAN DEFAULT 1 NOT NULL, "
    "PRIMARY KEY (user_id)) WITHOUT ROWID"
)


def to_v8_scores(store) -> None:
    """SQLite: rebuild ``scores`` as versions <= 8 had it -- its times as ISO text
    (``YYYY-MM-DDTHH:MM:SS.ffffff``), not int64 microseconds -- with the same rows.
    PostgreSQL: nothing changed there."""
    import numpy as np
    from sqlalchemy import text

    if store.dialect != "sqlite":
        return
    with store._write() as conn:
        rows = conn.execute(text("SELECT * FROM scores")).mappings().all()
        conn.execute(text("DROP TABLE scores"))
        conn.execute(text(V8_SQLITE_SCORES))
        for r in rows:
            r = dict(r)
            for k in ("features_time", "updated_at"):
                r[k] = str(np.datetime_as_string(np.int64(r[k]).astype("datetime64[us]"), unit="us"))
            conn.execute(text("INSERT INTO scores VALUES (:user_id, :risk, :model_version, :features_time, "
                              ":reasons, :plan, :monthly_revenue, :partition, :updated_at, :active)"), r)  # fmt: skip
