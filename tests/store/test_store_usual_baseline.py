"""``bench_store``'s "usual way" baseline writes exactly what the store's bulk path writes.

The baseline's rate is only a fair comparison if it does the same work: the same rows in
the same table, the same "newer features win" rule, new users inserted. Both write the
same batches into two stores that start equal; the tables must end equal.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import text

from pipeline.clock import FakeClock
from pipeline.store import Store
from tests.benchmarks.bench_modules import load
from tests.store.conftest import drop_schema

bench_store = load("bench_store")


def _table(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        q = f'SELECT * FROM "{store.schema}".scores' if store.schema else "SELECT * FROM scores"
        rows = pd.DataFrame(conn.execute(text(q + " ORDER BY user_id")).mappings().all())
    rows["reasons"] = [None if r is None else (json.loads(r) if isinstance(r, str) else r) for r in rows["reasons"]]
    return rows


def test_usual_way_writes_what_the_bulk_path_writes(backend: dict[str, str | None], tmp_path: Path) -> None:
    clock = FakeClock(bench_store.T0 + timedelta(days=3))
    ours = Store(str(backend["url"]), schema=backend["schema"], clock=clock)
    if backend["schema"] is None:
        other_url, other_schema = f"sqlite:///{tmp_path / 'usual.db'}", None
    else:
        other_url, other_schema = str(backend["url"]), f"t_{uuid.uuid4().hex[:12]}"
    theirs = Store(other_url, schema=other_schema, clock=clock)
    usual = None
    try:
        rng = np.random.default_rng(3)
        first = bench_store.frame(np.arange(300), rng.random(300), bench_store.T0)
        for store in (ours, theirs):
            store.upsert_scores(first, history=None)
        usual = bench_store.Usual(theirs)
        newer = bench_store.frame(rng.choice(400, 200, replace=False), rng.random(200),
                                  bench_store.T0 + timedelta(hours=1))  # fmt: skip
        older = bench_store.frame(np.arange(250, 270), rng.random(20), bench_store.T0 - timedelta(days=1))
        for batch in (newer, older):  # new users, updates, and rows older than the stored ones
            ours.upsert_scores(batch, history=None)
            usual.write(batch, clock.now())
        a, b = _table(ours), _table(theirs)
        assert len(a) == len(set(first.user_id) | set(newer.user_id)) > 300
        pd.testing.assert_frame_equal(a, b)
        stale = a.set_index("user_id").loc[older.user_id]
        assert (stale["features_time"] != older.set_index("user_id")["features_time"]).all()
    finally:
        if usual is not None:
            usual.close()
        ours.close()
        theirs.close()
        if other_schema is not None:
            drop_schema(other_url, other_schema)
