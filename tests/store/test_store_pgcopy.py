"""The binary ``COPY`` payload of score rows (``pipeline.store.pgcopy``): the server reads
back every value as given -- NULLs in each nullable column, non-ASCII and escape-worthy
text, jsonb, extreme times and floats, a batch of one and of thousands -- and the store
written through it equals the SQLite store given the same rows."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import create_engine, event, text

from pipeline.clock import FakeClock
from pipeline.errors import InvalidRowError, StoreError
from pipeline.store import Store, pgcopy
from pipeline.store.bulk import SCORE_COLUMNS, score_copy
from pipeline.store.rows import score_batch
from tests.store.conftest import drop_schema

T = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
ODD = [
    "u-ascii",
    "ü-ñoño",
    "用户-7",
    "tab\there",
    "line\nbreak",
    "back\\slash",
    "quote'\"",
    "😀" * 50,
]


def _rows(n: int, extreme_times: bool = True) -> list[dict]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        user = ODD[i] if i < len(ODD) else f"user-{i:06d}"
        out.append({
            "user_id": user,
            "risk": [0.0, 1.0, 0.1, 1e-300, 0.9999999999999999][i % 5] if i < 10 else float(rng.random()),
            "model_version": "v-ß" if i % 3 else "12",
            "features_time": [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                              datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)][i] if i < 3 and extreme_times
            else T + timedelta(microseconds=i),
            "reasons": [{"feature": "ü\t\"x\"", "contribution": 0.5, "value": -1e-7}] if i % 4 == 0 else None,
            "plan": None if i % 5 == 1 else ("premium\\4k" if i % 2 else "básico"),
            "monthly_revenue": None if i % 6 == 2 else 9.99 + i,
            "partition": None if i % 7 == 3 else (2**31 - 1 if i == 4 else i % 4),
            "active": i % 9 != 0,
        })  # fmt: skip
    return out


@pytest.mark.parametrize(("n", "part_rows"), [(1, 2500), (9, 4), (3000, 7), (3000, 2500)])
def test_the_server_reads_back_every_value_of_a_binary_copy(pg: str, n: int, part_rows: int) -> None:
    """Sent in parts of ``part_rows`` rows (as the store streams them), every value comes
    back: parts split rows at any boundary, the signature only in the first, the end
    marker only in the last."""
    rows = _rows(n)
    batch = score_batch(rows)
    now_us = int((T - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(pg)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(
                f'CREATE TABLE "{schema}".t (user_id varchar(200), risk float8, model_version varchar(100), '
                "features_time timestamptz, reasons jsonb, plan varchar(50), monthly_revenue float8, "
                "partition integer, updated_at timestamptz, active boolean)"
            ))  # fmt: skip
            with conn.connection.driver_connection.cursor() as cur:
                cols = ", ".join(SCORE_COLUMNS)
                with cur.copy(f'COPY "{schema}".t ({cols}) FROM STDIN (FORMAT BINARY)') as copy:
                    for part in score_copy(batch, now_us, part_rows):
                        copy.write(part)
            got = conn.execute(text(f'SELECT {", ".join(SCORE_COLUMNS)} FROM "{schema}".t')).all()
    finally:
        engine.dispose()
        drop_schema(pg, schema)
    by_user = {r[0]: r for r in got}
    assert len(got) == len(by_user) == n
    for r in rows:
        user, risk, version, ft, reasons, plan, revenue, part, updated, active = by_user[
            r["user_id"]
        ]
        assert risk == r["risk"] and version == r["model_version"]
        assert ft == r["features_time"] and updated == T
        assert reasons == r["reasons"]  # jsonb comes back parsed
        assert (plan, revenue, part, active) == (
            r["plan"],
            r["monthly_revenue"],
            r["partition"],
            r["active"],
        )


def test_a_store_written_by_binary_copy_equals_the_sqlite_store(pg: str, tmp_path) -> None:
    rows = _rows(500, extreme_times=False)  # readers decode to pandas' ns range
    schema = f"t_{uuid.uuid4().hex[:12]}"
    stores = [Store(f"sqlite:///{tmp_path / 'c.db'}", clock=FakeClock(T)),
              Store(pg, schema=schema, clock=FakeClock(T))]  # fmt: skip
    try:
        frames = []
        for store in stores:
            store.upsert_scores(rows)
            df = store.current_scores(top_k=None, active_only=False).sort_values("user_id")
            df["reasons"] = df["reasons"].map(lambda v: json.loads(v) if isinstance(v, str) else v)
            frames.append(df.reset_index(drop=True))
        assert len(frames[0]) == 500
        assert frames[0].equals(frames[1]), frames[0].compare(frames[1])
    finally:
        for store in stores:
            store.close()
        drop_schema(pg, schema)


def test_a_partition_outside_int4_is_a_clear_error_before_anything_is_sent() -> None:
    batch = score_batch([{"user_id": "u", "risk": 0.5, "model_version": "1", "features_time": T,
                          "partition": 2**31}])  # fmt: skip
    with pytest.raises(InvalidRowError, match="partition of row 0 is 2147483648"):
        score_copy(batch, 0)


def test_the_parts_of_a_payload_are_the_one_part_payload_cut_at_row_boundaries() -> None:
    batch = score_batch(_rows(50))
    whole = b"".join(score_copy(batch, 123, part_rows=50))
    assert len(list(score_copy(batch, 123, part_rows=50))) == 1
    for rows in (1, 7, 49):
        parts = list(score_copy(batch, 123, part_rows=rows))
        assert len(parts) == -(-50 // rows)
        assert b"".join(parts) == whole
        assert parts[0].startswith(pgcopy.SIGNATURE) and not parts[1].startswith(pgcopy.SIGNATURE)
        assert parts[-1].endswith(b"\xff\xff") and not parts[0].endswith(b"\xff\xff")
    empty = list(score_copy(score_batch([]), 123))
    assert empty == [pgcopy.SIGNATURE + b"\xff\xff"]


def test_an_empty_payload_is_the_signature_and_the_end_marker() -> None:
    assert pgcopy.payload([pgcopy.text([]), pgcopy.float8([])]) == pgcopy.SIGNATURE + b"\xff\xff"


def test_a_write_the_server_cancels_is_a_store_error_and_writes_nothing(pg: str) -> None:
    """A statement cancelled (or a connection lost) in the driver-level part of a write
    (the COPY, the pipelined upsert and history segment) is a ``StoreError`` naming the
    cause, as a failure through SQLAlchemy is, and the transaction is rolled back."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(pg, schema=schema, clock=FakeClock(T))
    rows = [{"user_id": f"u{i:05d}", "risk": 0.5, "model_version": "1", "features_time": T}
            for i in range(20_000)]  # fmt: skip

    def cancel_soon(conn) -> None:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 1")

    try:
        event.listen(store.engine, "begin", cancel_soon)
        # the server reports the cancel as a statement timeout or, intermittently (2 of 4
        # runs here), as "canceling statement due to user request": either is the cause named
        with pytest.raises(StoreError, match="write failed: canceling statement due to (statement timeout|user request)"):
            store.upsert_scores(rows)
        event.remove(store.engine, "begin", cancel_soon)
        assert store.current_scores(top_k=None).empty and store.score_history().empty
        assert store.upsert_scores(rows).scores == 20_000
    finally:
        store.close()
        drop_schema(pg, schema)
