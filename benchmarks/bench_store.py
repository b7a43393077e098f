"""Store write throughput: 10,000-row score upserts on SQLite (WAL) and PostgreSQL.

Every batch holds 10,000 **distinct** users drawn from a table of ``USERS`` = 200,000
scored users (each batch different users: a pass over a permutation of the population,
so each write lands on cold rows, as the stream's coalesced flushes do), users in random
order, 10% with reasons, features one hour of event time later than the table's.

* ``store_sqlite_upsert_rows_per_s``: the production default: current scores **and**
  their history (one point per user per day of event time, ``HistoryPolicy``; here every
  row is a new point of a new day), in one transaction. Target >= 200,000 rows/s. Since
  schema version 8 the history is one columnar segment row per write
  (``pipeline.store.segments``), built and inserted inside the clock.
* ``store_sqlite_upsert_scores_only_rows_per_s``: the same without history.
* ``store_pg_upsert_rows_per_s`` / ``store_pg_upsert_scores_only_rows_per_s``: the same
  two against PostgreSQL (``CHURN_BENCH_PG_URL``, default the local server's ``test``
  database, in a throw-away schema): COPY into a temporary staging table, then one
  ``INSERT ... SELECT ... ON CONFLICT`` into ``scores`` and one segment row (under an
  advisory lock). Target >= 150,000 rows/s. Skipped with a note if no server answers.
* ``store_<db>_upsert_usual_rows_per_s`` (and ``..._per_cpu_s``): the same scores-only
  batches written the usual way a good engineer would without this project's bulk path
  (PostgreSQL: tuples from the frame, psycopg's C ``COPY .. write_row`` into a staging
  table, one ``INSERT .. ON CONFLICT DO UPDATE``; SQLite: one ``executemany`` of a one-row
  upsert), batch by batch alternately with ours; ``store_<db>_upsert_vs_usual``: ours
  (scores only) over it. Both sides meet the same minutes of a shared host, so the ratio
  travels between hosts where the rates do not.
* ``store_<db>_history_compact_points_per_s``: ``Store.compact_history()`` (merge every
  segment into the resolved points) on the store as the batches above left it: points
  read per wall-clock second (beside it, per CPU second). Reads do not need it (they
  resolve segments themselves); it is housekeeping that keeps a long-running store's
  reads fast, and its cost is reported here, not hidden. ``..._history_read_user_ms``:
  one user's history (the dashboard's chart), median of 5 reads, before and after
  (``..._compacted_ms``). Before schema version 8 (keyed history) there was no
  compaction; a one-user read was one B-tree seek per interval.

Rates are rows per **wall-clock** second, median of 7 batches (quick: 3, over 50,000
users) after one warm-up batch; beside each, ``..._rows_per_cpu_s``: rows per CPU second
(all the batches together)
of this process (SQLite works in it, with its WAL checkpointer thread) plus, for
PostgreSQL, the server backend process that ran the statements (read from ``/proc``; the
server's background WAL writer and checkpointer are not counted). On a shared machine
wall-clock moves with the other load far more than CPU time does.

    python -m benchmarks.bench_store [--quick]
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from benchmarks.cpu import tree_cpu_s
from pipeline.clock import FakeClock
from pipeline.store import HistoryPolicy, Store
from pipeline.store.bulk import SCORE_COLUMNS, SCORE_UPDATE

BATCH = 10_000
USERS = 200_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PG_URL = os.environ.get("CHURN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DAILY = HistoryPolicy()


def frame(ids: np.ndarray, risk: np.ndarray, at: datetime) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [f"user-{i:07d}" for i in ids],
        "risk": risk,
        "model_version": "3",
        "features_time": pd.Series(pd.date_range(at, periods=len(ids), freq="ms", tz=UTC)),
        "reasons": [[{"feature": "failed_payments_30d", "value": 3.0, "contribution": 0.4}]
                    if x > 0.9 else None for x in risk],
        "plan": "standard",
        "monthly_revenue": 13.99,
        "partition": ids % 4,
    })  # fmt: skip


def distinct_batches(users: int, n: int, day: int, seed: int = 11) -> Iterator[pd.DataFrame]:
    """``n`` batches of BATCH distinct users, each batch other users (a permutation)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(users)
    for k in range(n):
        ids = order[(k * BATCH) % users :][:BATCH]
        yield frame(ids, rng.random(len(ids)), T0 + timedelta(days=day, hours=1, minutes=k))


def fill(store: Store, users: int) -> None:
    """Every user scored once (day 0), with its history point."""
    rng = np.random.default_rng(5)
    for lo in range(0, users, 50_000):
        ids = np.arange(lo, min(lo + 50_000, users))
        store.upsert_scores(frame(ids, rng.random(len(ids)), T0))


def _backend_pid(store: Store) -> int | None:
    """PostgreSQL: the server process of the store's (pooled, reused) connection."""
    if store.dialect != "postgresql":
        return None
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _cpu(backend: int | None) -> float:
    """CPU seconds of this process (its threads: the SQLite checkpointer too) plus, for
    PostgreSQL, the server backend doing the work (same machine)."""
    return tree_cpu_s() + (0.0 if backend is None else tree_cpu_s(backend))


def rate(store: Store, users: int, reps: int, history: HistoryPolicy | None,
         day: int) -> tuple[float, float]:  # fmt: skip
    """(rows per wall-clock second: median batch; rows per CPU second: over all batches,
    as CPU clocks tick in 10 ms)."""
    frames = list(distinct_batches(users, reps + 1, day, seed=day))
    store.upsert_scores(frames[0], history=history)  # warm-up: statement caches
    backend = _backend_pid(store)
    walls, cpus = [], []
    for f in frames[1:]:
        t, c = time.perf_counter(), _cpu(backend)
        store.upsert_scores(f, history=history)
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu(backend) - c)
    if backend is not None and _backend_pid(store) != backend:
        cpus = [math.nan]  # the pool switched connections: the server CPU was not all seen
    return BATCH / statistics.median(walls), BATCH * len(cpus) / sum(cpus)


# -- the usual way, measured beside ours in the same run ---------------------------------
# What a good engineer writes without this project's bulk path: rows as tuples from the
# frame, psycopg's (C-accelerated) ``COPY ... write_row`` into a staging table and one
# ``INSERT ... ON CONFLICT DO UPDATE`` (the "usual way") on PostgreSQL; one
# ``executemany`` of a one-row upsert in a transaction on SQLite. Same table, same rows,
# same rule (newer features win), scores only. Interleaved batch by batch with ours, so
# the ratio is of the same minutes of this shared host: rates alone move with it.
_COLS = SCORE_COLUMNS  # the same table and columns as ours
_SETS = ", ".join(f"{c} = excluded.{c}" for c in SCORE_UPDATE)


def _usual_rows(f: pd.DataFrame, now: datetime, sqlite: bool) -> list[tuple]:
    """The frame as row tuples, converted column-wise with pandas (times: SQLite's scores
    keep int64 microseconds, schema ``ScoreTime``; PostgreSQL takes datetimes)."""
    n = len(f)
    if sqlite:
        times = (f["features_time"].astype("int64") // 1000).tolist()  # ns -> us
        stamp: object = round(now.timestamp() * 1_000_000)
    else:
        times = pd.DatetimeIndex(f["features_time"]).to_pydatetime().tolist()
        stamp = now
    reasons = [None if r is None else json.dumps(r) for r in f["reasons"]]
    return list(zip(f["user_id"].tolist(), f["risk"].tolist(), f["model_version"].tolist(), times,
                    reasons, f["plan"].tolist(), f["monthly_revenue"].tolist(),
                    f["partition"].astype(int).tolist(), [stamp] * n, [True] * n, strict=True))  # fmt: skip


class Usual:
    """The usual upsert of a frame's current scores into ``store``'s ``scores`` table."""

    def __init__(self, store: Store) -> None:
        self.sqlite = store.dialect == "sqlite"
        url = store.engine.url
        self.table = f'"{store.schema}".scores' if store.schema else "scores"
        cols = ", ".join(_COLS)
        if self.sqlite:
            self.conn = sqlite3.connect(url.database or "", isolation_level=None, timeout=30)
            self.sql = (f"INSERT INTO scores ({cols}) VALUES ({', '.join('?' * len(_COLS))}) "
                        f"ON CONFLICT (user_id) DO UPDATE SET {_SETS} "
                        "WHERE excluded.features_time >= scores.features_time")  # fmt: skip
        else:
            self.conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
            self.conn.execute(f"CREATE TEMP TABLE stage (LIKE {self.table}) ON COMMIT DELETE ROWS")
            self.conn.commit()
            self.sql = (f"INSERT INTO {self.table} AS t ({cols}) SELECT {cols} FROM stage "
                        f"ON CONFLICT (user_id) DO UPDATE SET {_SETS} "
                        "WHERE excluded.features_time >= t.features_time")  # fmt: skip

    def backend(self) -> int | None:
        return None if self.sqlite else self.conn.info.backend_pid

    def write(self, f: pd.DataFrame, now: datetime) -> None:
        rows = _usual_rows(f, now, self.sqlite)
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(self.sql, rows)
            self.conn.execute("COMMIT")
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            with cur.copy(f"COPY stage ({', '.join(_COLS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(self.sql)

    def close(self) -> None:
        self.conn.close()


def rate_with_usual(store: Store, users: int, reps: int, day: int) -> tuple[float, float, float, float]:
    """Scores only: ours and the usual way, batch by batch alternately (each batch other
    distinct users). (ours rows/s wall, ours rows per CPU-s, usual wall, usual per CPU-s)."""
    frames = list(distinct_batches(users, 2 * reps + 2, day, seed=day))
    usual = Usual(store)
    try:
        now = store.clock.now()
        store.upsert_scores(frames[0], history=None)  # warm-ups: statement caches
        usual.write(frames[1], now)
        backends = {"ours": _backend_pid(store), "usual": usual.backend()}
        walls: dict[str, list[float]] = {"ours": [], "usual": []}
        cpus: dict[str, list[float]] = {"ours": [], "usual": []}
        for k, f in enumerate(frames[2:]):
            who = "ours" if k % 2 == 0 else "usual"
            t, c = time.perf_counter(), _cpu(backends[who])
            if who == "ours":
                store.upsert_scores(f, history=None)
            else:
                usual.write(f, now)
            walls[who].append(time.perf_counter() - t)
            cpus[who].append(_cpu(backends[who]) - c)
        if backends["ours"] is not None and _backend_pid(store) != backends["ours"]:
            cpus["ours"] = [math.nan]
    finally:
        usual.close()
    return tuple(  # type: ignore[return-value]
        x for who in ("ours", "usual")
        for x in (BATCH / statistics.median(walls[who]), BATCH * len(cpus[who]) / sum(cpus[who]))
    )


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


def _read_user_ms(store: Store) -> float:
    walls = []
    for k in range(5):
        t = time.perf_counter()
        got = store.score_history([f"user-{k * 997:07d}"])
        walls.append(time.perf_counter() - t)
        assert len(got) >= 1
    return statistics.median(walls) * 1000


def compaction(store: Store, prefix: str, out: dict[str, float]) -> str:
    """Read one user's history, compact, read again; returns a note of the sizes."""
    out[f"store_{prefix}_history_read_user_ms"] = _read_user_ms(store)
    backend = _backend_pid(store)
    t, c = time.perf_counter(), _cpu(backend)
    res = store.compact_history()
    wall, cpu = time.perf_counter() - t, _cpu(backend) - c
    out[f"store_{prefix}_history_compact_points_per_s"] = res["points"] / wall
    out[f"store_{prefix}_history_compact_points_per_cpu_s"] = res["points"] / cpu
    out[f"store_{prefix}_history_read_user_compacted_ms"] = _read_user_ms(store)
    return (f"{prefix}: compacted {res['segments']} segments / {res['points']:,} points into "
            f"{res['segments_after']} / {res['points_after']:,}")  # fmt: skip


def _both(store: Store, prefix: str, users: int, reps: int, out: dict[str, float]) -> str:
    fill(store, users)
    wall, cpu = rate(store, users, reps, DAILY, 1)
    out[f"store_{prefix}_upsert_rows_per_s"] = wall
    out[f"store_{prefix}_upsert_rows_per_cpu_s"] = cpu
    wall, cpu, usual, usual_cpu = rate_with_usual(store, users, reps, 2)
    out[f"store_{prefix}_upsert_scores_only_rows_per_s"] = wall
    out[f"store_{prefix}_upsert_scores_only_rows_per_cpu_s"] = cpu
    out[f"store_{prefix}_upsert_usual_rows_per_s"] = usual
    out[f"store_{prefix}_upsert_usual_rows_per_cpu_s"] = usual_cpu
    out[f"store_{prefix}_upsert_vs_usual"] = wall / usual
    return compaction(store, prefix, out)


def run(quick: bool = False) -> dict[str, float]:
    reps = 3 if quick else 7
    users = 50_000 if quick else USERS
    out: dict[str, float] = {}
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/churn.db", clock=FakeClock())
        notes.append(_both(store, "sqlite", users, reps, out))
        store.close()
    if _pg_reachable():
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        store = Store(PG_URL, schema=schema, clock=FakeClock())
        try:
            notes.append(_both(store, "pg", users, reps, out))
        finally:
            with store.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            store.close()
    else:
        print(f"  (PostgreSQL at {PG_URL} not reachable: PostgreSQL figures skipped)")
    print(f"median of {reps} batches of {BATCH:,} distinct users (of {users:,} scored); 'upsert' = "
          "scores + daily history point (the stream's default); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    targets = {"store_sqlite_upsert_rows_per_s": 200_000, "store_pg_upsert_rows_per_s": 150_000}
    for note in notes:
        print(f"  ({note})")
    for k, v in out.items():
        if k.endswith("_ms"):
            print(f"  {k:48s} {v:10,.1f} ms (median of 5 reads of one user's history)")
            continue
        if k.endswith("_vs_usual"):
            print(f"  {k:48s} {v:10.2f}x the usual way's rows/s (scores only, batches interleaved)")
            continue
        if k.endswith("compact_points_per_s"):
            print(f"  {k:48s} {v:10,.0f} points/s wall (compact_history, once, after the batches)")
            continue
        if k.endswith("_cpu_s"):
            what = "points" if "_history_" in k else "rows"
            who = "client + PostgreSQL backend" if k.startswith("store_pg_") else "this process: SQLite works in it"
            print(f"  {k:48s} {v:10,.0f} {what} per CPU second ({who})")
            continue
        goal = f"  (target >= {targets[k]:,}: {v / targets[k]:.2f}x)" if k in targets else ""
        print(f"  {k:48s} {v:10,.0f} rows/s wall  {BATCH / v * 1000:6.0f} ms/batch{goal}")
    return out


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
