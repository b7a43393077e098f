"""PostgreSQL 15+ applies a write's staged scores with ``MERGE`` (``Bulk.upsert_scores``):
the same table as ``INSERT .. ON CONFLICT``, and a retry with the latter when another
writer inserted one of the write's new users meanwhile."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from pipeline.clock import FakeClock
from pipeline.store import Store
from pipeline.store import schema as s
from tests.store.conftest import drop_schema
from tests.store.helpers import T0, reference_history, score
from tests.store.test_store_scores import REASONS, table


@pytest.fixture
def pg_store(pg: str) -> Iterator[Store]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = Store(pg, schema=schema, clock=FakeClock(T0 + timedelta(days=1)))
    try:
        yield store
    finally:
        store.close()
        drop_schema(pg, schema)


def test_merge_and_on_conflict_write_the_same(pg: str, monkeypatch: pytest.MonkeyPatch):
    """PostgreSQL 15+ applies staged scores with MERGE; ON CONFLICT (older servers, and
    the retry below) must leave the same table: new users, newer rows, older rows kept
    out, ties (the later write wins), inactive rows, reasons and plans."""
    rng = np.random.default_rng(11)
    batches = [
        [score(f"u{u:03d}", float(rng.random()), float(m), reasons=REASONS if u % 3 == 0 else None,
               plan="basic" if u % 2 else None, monthly_revenue=9.99, active=bool(u % 5))
         for u, m in zip(rng.choice(60, 40, replace=False), rng.integers(0, 5, 40), strict=True)]
        for _ in range(6)
    ]  # fmt: skip
    tables = []
    for merge in (True, False):
        schema = f"t_{uuid.uuid4().hex[:12]}"
        store = Store(pg, schema=schema, clock=FakeClock(T0 + timedelta(days=1)))
        try:
            with store.engine.connect() as conn:
                assert store._bulk.can_merge(conn)  # this server (15) has MERGE
            monkeypatch.setattr(type(store._bulk), "can_merge", lambda self, conn, m=merge: m)
            results = [store.upsert_scores(b) for b in batches]
            tables.append((store.current_scores(top_k=None).sort_values("user_id").reset_index(drop=True),
                           [(r.scores, r.stale) for r in results]))  # fmt: skip
        finally:
            with store.engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            store.close()
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0])
    assert tables[0][1] == tables[1][1]
    state, _ = reference_history(batches, 86_400)  # the rules, row by row
    want = sorted((u, r["risk"], r["features_time"]) for u, r in state.items() if r["active"])
    got = tables[0][0]
    assert list(zip(got.user_id, got.risk, got.features_time, strict=True)) == want  # readers: active rows


def test_a_new_user_inserted_by_another_writer_meanwhile_is_retried(pg_store: Store,
                                                                   caplog: pytest.LogCaptureFixture):  # fmt: skip
    """MERGE does not wait out another transaction's insert of the same new user as ON
    CONFLICT does: it fails with a unique violation once that one commits. The store
    retries the whole write with ON CONFLICT, so both writers succeed and the newer
    features win, as with two ON CONFLICT writers."""
    store = pg_store
    store.upsert_scores([score("old", 0.1, 0)])  # schema, statements and staging table exist
    other = store.engine.connect()
    tx = other.begin()
    other.execute(text(
        f"INSERT INTO {store._bulk.table(s.scores)} (user_id, risk, model_version, features_time, updated_at, active) "
        "VALUES ('new', 0.5, '1', :t, :t, true)"), {"t": T0.replace(tzinfo=None) + timedelta(minutes=5)})
    out: dict[str, object] = {}

    def write() -> None:
        try:
            out["result"] = store.upsert_scores([score("new", 0.9, 10), score("old", 0.2, 10)])
        except BaseException as exc:  # noqa: BLE001 - the assertion below shows it
            out["error"] = exc

    caplog.set_level("INFO", logger="pipeline.store.store")
    t = threading.Thread(target=write)
    t.start()
    t.join(1.0)
    assert t.is_alive(), "the write should wait for the other writer's insert of 'new'"
    tx.commit()
    other.close()
    t.join(30)
    assert "error" not in out, out.get("error")
    assert out["result"].scores == 2
    assert table(store) == [("new", 0.9, "1", T0 + timedelta(minutes=10)), ("old", 0.2, "1", T0 + timedelta(minutes=10))]
    assert "retrying with ON CONFLICT" in caplog.text
