"""Store write throughput: 10,000-row score upserts on SQLite (WAL) and PostgreSQL.

* ``store_sqlite_upsert_rows_per_s``: a 10,000-row batch (a DataFrame, users in random
  order, 10% with reasons) upserted over the same 10,000 users (every row an update),
  without history sampling. Target: a batch well under 100 ms (>= 100,000 rows/s).
* ``store_sqlite_upsert_history_rows_per_s``: the same with history sampling on (the
  default rule); risks drift a little between batches, so few points are written.
* ``store_sqlite_upsert_200k_rows_per_s`` (full run only): 10,000 random users of a
  200,000-user table.
* ``store_pg_upsert_rows_per_s`` / ``store_pg_upsert_history_rows_per_s``: the first
  two against PostgreSQL (``CHURN_BENCH_PG_URL``, default the local server's ``test``
  database, in a throw-away schema); skipped with a note if no server answers.

Rates are rows per **wall-clock** second (PostgreSQL works in its own process, so CPU
time of this one would flatter it), median of 7 batches (quick: 3) after one warm-up.
On a shared machine the figures move by +-30% from run to run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline.clock import FakeClock
from pipeline.store import HistorySampling, Store

BATCH = 10_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PG_URL = os.environ.get("CHURN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def batches(users: int, n: int, seed: int = 11):
    """``n`` frames of BATCH rows over ``users`` users, features one minute apart."""
    rng = np.random.default_rng(seed)
    risk = rng.random(users)
    for k in range(n):
        ids = (
            rng.choice(users, size=BATCH, replace=False)
            if users > BATCH
            else rng.permutation(users)
        )
        risk[ids] = np.clip(risk[ids] + rng.normal(0, 0.02, len(ids)), 0, 1)
        r = risk[ids]
        yield pd.DataFrame({
            "user_id": [f"user-{i:07d}" for i in ids],
            "risk": r,
            "model_version": "3",
            "features_time": pd.Series(pd.date_range(T0 + timedelta(minutes=k), periods=len(ids),
                                                     freq="ms", tz=UTC)),
            "reasons": [[{"feature": "failed_payments_30d", "contribution": 0.4}] if x > 0.9
                        else None for x in r],
            "plan": "standard",
            "monthly_revenue": 13.99,
            "partition": ids % 4,
        })  # fmt: skip


def _rate(store: Store, users: int, reps: int, history: HistorySampling | None) -> float:
    frames = list(batches(users, reps + 1))
    store.upsert_scores(frames[0], history=history)  # warm-up: inserts, statement caches
    times = []
    for frame in frames[1:]:
        t = time.perf_counter()
        store.upsert_scores(frame, history=history)
        times.append(time.perf_counter() - t)
    return BATCH / statistics.median(times)


def _fill(store: Store, users: int) -> None:
    for frame in batches(users, users // BATCH, seed=5):
        store.upsert_scores(frame, history=None)


def _pg_reachable() -> bool:
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def run(quick: bool = False) -> dict[str, float]:
    reps = 3 if quick else 7
    out: dict[str, float] = {}
    rule = HistorySampling()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/churn.db", clock=FakeClock())
        out["store_sqlite_upsert_rows_per_s"] = _rate(store, BATCH, reps, None)
        out["store_sqlite_upsert_history_rows_per_s"] = _rate(store, BATCH, reps, rule)
        store.close()
        if not quick:
            big = Store(f"sqlite:///{tmp}/big.db", clock=FakeClock())
            _fill(big, 200_000)
            out["store_sqlite_upsert_200k_rows_per_s"] = _rate(big, 200_000, reps, None)
            big.close()
    if _pg_reachable():
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = Store(PG_URL, schema=schema, clock=FakeClock())
        try:
            out["store_pg_upsert_rows_per_s"] = _rate(store, BATCH, reps, None)
            out["store_pg_upsert_history_rows_per_s"] = _rate(store, BATCH, reps, rule)
        finally:
            with store.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            store.close()
    else:
        print(f"  (PostgreSQL at {PG_URL} not reachable: PostgreSQL figures skipped)")
    print(f"median of {reps} batches of {BATCH:,} rows, rows per wall-clock second")
    for k, v in out.items():
        target = (
            f"  (target < 100 ms: {100 / (BATCH / v * 1000):.2f}x)"
            if k.endswith("sqlite_upsert_rows_per_s")
            else ""
        )
        print(f"  {k:40s} {v:10,.0f} rows/s  {BATCH / v * 1000:6.0f} ms/batch{target}")
    return out


if __name__ == "__main__":
    run()
