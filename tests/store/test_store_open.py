"""Opening the store: URLs, WAL, schema versions and migrations, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text, update

from pipeline.config import Settings
from pipeline.errors import ConfigError, StoreError, StoreSchemaError
from pipeline.store import SCHEMA_VERSION, Store
from pipeline.store import schema as s
from pipeline.store.migrations import migrate
from tests.needs import pg_unavailable
from tests.store.conftest import PG_URLS, pg_url
from tests.store.helpers import T0, score, to_v7_history, to_v8_scores

ROOT = Path(__file__).resolve().parents[2]
WORKER = str(Path(__file__).with_name("store_workers.py"))


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("", ConfigError, "is empty.*CHURN_STORE_URL"),
        ("not a url", ConfigError, "'not a url' is not a database URL.*sqlite:///"),
        ("mysql://me:secret@db/churn", ConfigError, r"mysql://me:\*\*\*@db/churn.*'mysql' is not supported"),
        ("postgresql+psycopg://me@127.0.0.1:5432", ConfigError, "names no database"),
        ("postgresql+psycopg2://me@127.0.0.1/x", ConfigError, "driver is not installed.*psycopg"),
        ("postgresql+psycopg://me:pw@127.0.0.1:1/test", StoreError,
         r"cannot open store 'postgresql\+psycopg://me:\*\*\*@127.0.0.1:1/test'.*server runs"),
    ],
)  # fmt: skip
def test_bad_urls_say_what_and_how_to_fix(url, error, match):
    with pytest.raises(error, match=match) as info:
        Store(url)
    assert "secret" not in str(info.value) and ":pw@" not in str(info.value)


def test_sqlite_url_errors(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(StoreError, match="points at a folder"):
        Store(f"sqlite:///{tmp_path / 'adir'}")
    with pytest.raises(ConfigError, match="schemas are for PostgreSQL"):
        Store(f"sqlite:///{tmp_path / 'x.db'}", schema="s1")
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    with pytest.raises(ConfigError, match="store schema 'a;b'"):
        Store(url, schema="a;b")
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(f"sqlite:///{tmp_path / 'file' / 'sub' / 'x.db'}")


@pytest.mark.parametrize("damage", ["overwritten pages", "not a database"])
def test_a_damaged_sqlite_file_is_one_error_with_the_way_out(tmp_path, clock, damage):
    """Torn or overwritten pages, or another file in its place: writers, readers and the
    dashboard's read-only open all get a StoreError naming the file and the recovery, not
    a driver traceback; and nothing about the file is changed by trying."""
    path = tmp_path / "s.db"
    store = Store(f"sqlite:///{path}", clock=clock)
    store.upsert_scores([score(f"u{i}", 0.5) for i in range(5_000)])
    store.sync()
    store.close()
    if damage == "not a database":
        path.write_bytes(b"these are not the bytes you are looking for\n" * 2_000)
    else:
        with path.open("r+b") as f:  # past the header page: the schema and table B-trees
            f.seek(65_536 + 100)
            f.write(b"\xde\xad\xbe\xef" * 16_384)
    before = path.read_bytes()
    for opener in (lambda: Store(f"sqlite:///{path}", clock=clock),
                   lambda: Store(f"sqlite:///{path}", read_only=True)):  # fmt: skip
        with pytest.raises(StoreError, match=r"is damaged \(.*\): SQLite cannot read it\..*reset-offsets earliest"):
            opener()
    assert path.read_bytes() == before


def test_sqlite_default_from_settings_uses_wal(tmp_path, clock):
    settings = Settings(data_dir=tmp_path / "data")
    store = Store.from_settings(settings, clock=clock)
    assert store.url == f"sqlite:///{(tmp_path / 'data' / 'churn.db').resolve()}"
    store.upsert_scores([score("u1", 0.5)])
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    assert (tmp_path / "data" / "churn.db-wal").exists()
    store.close()


def test_postgresql_url_without_driver_means_psycopg(tmp_path):
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    from tests.store.conftest import drop_schema

    try:
        store = Store(url.replace("+psycopg", ""), schema="t_plain_url")
        assert store.engine.url.drivername == "postgresql+psycopg"
        store.close()
    finally:
        drop_schema(url, "t_plain_url")


def test_schema_is_created_once_and_reopening_keeps_data(make_store):
    a = make_store()
    assert a.schema_version() == SCHEMA_VERSION
    a.upsert_scores([score("u1", 0.4)])
    b = make_store()  # a second process opening the same store
    assert b.schema_version() == SCHEMA_VERSION
    assert list(b.current_scores().user_id) == ["u1"]


def test_a_newer_schema_is_refused(make_store):
    a = make_store()
    with a.engine.begin() as conn:
        conn.execute(update(s.schema_version).values(version=SCHEMA_VERSION + 5))
    with pytest.raises(StoreSchemaError, match=rf"version {SCHEMA_VERSION + 5} is newer.*upgrade"):
        make_store()


def test_migrations_run_in_order_once(make_store):
    store = make_store()
    calls: list[int] = []

    def v2(conn):
        calls.append(2)
        conn.execute(text("SELECT 1"))

    def v3(conn):
        calls.append(3)

    steps = {SCHEMA_VERSION + 1: v2, SCHEMA_VERSION + 2: v3}
    for _ in range(2):
        with store._write() as conn:
            migrate(conn, latest=SCHEMA_VERSION + 2, migrations=steps, now=store.clock.now())
    assert calls == [2, 3]
    assert store.schema_version() == SCHEMA_VERSION + 2
    with store._write() as conn, pytest.raises(StoreSchemaError, match="no migration from"):
        migrate(conn, latest=SCHEMA_VERSION + 3, migrations=steps, now=store.clock.now())


def test_two_processes_write_at_once_without_lock_errors(backend, tmp_path):
    Store(str(backend["url"]), schema=backend["schema"]).close()  # create the schema first
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    args = [str(backend["url"]), backend["schema"] or "-"]
    procs = [
        subprocess.Popen([sys.executable, WORKER, *args, w, "25", "400"], env=env,
                         stderr=subprocess.PIPE, text=True)
        for w in ("w0", "w1")
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        assert "locked" not in err
    store = Store(str(backend["url"]), schema=backend["schema"])
    scores = store.current_scores(top_k=None)
    assert len(scores) == 800 and scores.features_time.nunique() == 1
    assert sorted(store.assignments().partitions) == [(0,), (1,)]
    assert len(store.metrics_since()) == 50
    store.close()


def test_v5_history_keyed_by_user_first_is_rekeyed_bucket_first(make_store, clock):
    """Schema 7 keys score_history (bucket, user_id); a version-6 store (user_id, bucket)
    keeps every point, and one user's points still read back alone."""
    from sqlalchemy import inspect

    store = make_store()
    store.upsert_scores([score(f"u{i}", i / 10, m) for i in range(4) for m in (0, 1440, 2880)])
    before = store.score_history()
    to_v7_history(store)
    owner = store.schema
    name = f'"{owner}".score_history' if owner else "score_history"
    with store.engine.begin() as conn:  # rebuild the version-6 layout
        conn.execute(update(s.schema_version).values(version=6))
        if store.dialect == "postgresql":
            conn.execute(text(f"ALTER TABLE {name} DROP CONSTRAINT score_history_pkey, "
                              "ADD CONSTRAINT score_history_pkey PRIMARY KEY (user_id, bucket)"))  # fmt: skip
        else:
            conn.execute(text("CREATE TABLE h5 (user_id VARCHAR(200) NOT NULL, bucket VARCHAR(32) NOT NULL, "
                              "time VARCHAR(32) NOT NULL, risk FLOAT NOT NULL, model_version VARCHAR(100) "
                              "NOT NULL, PRIMARY KEY (user_id, bucket)) WITHOUT ROWID"))  # fmt: skip
            conn.execute(text("INSERT INTO h5 SELECT user_id, bucket, time, risk, model_version FROM score_history"))
            conn.execute(text("DROP TABLE score_history"))
            conn.execute(text("ALTER TABLE h5 RENAME TO score_history"))
    with store.engine.connect() as conn:
        pk = inspect(conn).get_pk_constraint("score_history", schema=owner)["constrained_columns"]
    assert pk == ["user_id", "bucket"]
    store.close()
    again = make_store()  # v7 rekeys (bucket, user_id), v8 carries the points into segments
    assert again.schema_version() == SCHEMA_VERSION >= 8
    with again.engine.connect() as conn:
        assert not inspect(conn).has_table("score_history", schema=owner)
    pd.testing.assert_frame_equal(again.score_history(), before)
    one = again.score_history(["u2"])
    assert list(one["user_id"]) == ["u2"] * 3 and list(one["risk"]) == [0.2] * 3
    assert again.score_history(["nobody"]).empty
    again.upsert_scores([score("u2", 0.9, 2881)])  # the upsert's conflict target is the new key
    assert again.score_history(["u2"])["risk"].tolist() == [0.2, 0.2, 0.9]


def test_v8_scores_with_text_times_migrate_to_integer_microseconds(make_store, clock):
    """Schema 9 keeps ``scores``' times as int64 microseconds on SQLite (a narrower table:
    every batch rewrites most of its pages). A version-8 store's ISO-text times are
    converted exactly; reasons (JSON text), plans, flags and every reader's answer stay
    the same, and the readers' time filters compare like with like."""
    from datetime import timedelta

    from dashboard.data import user_score

    store = make_store()
    reasons = [{"feature": "failed_payments_30d", "value": 3.0, "contribution": 0.4}]
    store.upsert_scores([
        score("hot", 0.91, reasons=reasons, plan="basic", monthly_revenue=9.5,
              features_time=T0 + timedelta(microseconds=1_000_001)),  # exact to the microsecond
        score("calm", 0.10, 90, plan="premium", monthly_revenue=19.99, partition=3),
        score("gone", 0.70, 600, plan=None, monthly_revenue=0.0, active=False),
    ], history=None)  # fmt: skip
    before = store.current_scores(top_k=None, active_only=False)
    summary = store.score_summary()
    one = user_score(store, "hot")
    to_v8_scores(store)
    again, columns = _reopened_from(store, make_store, 8)
    kinds = {name: str(c["type"]) for name, c in columns.items()}
    if again.dialect == "sqlite":
        assert kinds["features_time"] == kinds["updated_at"] == "BIGINT"
        with again.engine.connect() as conn:
            raw = conn.execute(text("SELECT features_time, reasons FROM scores WHERE user_id = 'hot'")).one()
        assert raw[0] == int((T0 - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) + 1_000_001
        assert json.loads(raw[1]) == reasons  # JSON text carried as text, not re-encoded
    pd.testing.assert_frame_equal(again.current_scores(top_k=None, active_only=False), before)
    assert again.score_summary() == summary
    pd.testing.assert_frame_equal(user_score(again, "hot"), one)
    assert again.cancels_since(T0 + timedelta(minutes=599)) == 1  # "gone", features at +600 min
    assert again.cancels_since(T0 + timedelta(minutes=600)) == 0
    again.upsert_scores([score("hot", 0.2, 0)], history=None)  # older features: not current
    assert again.current_scores(top_k=None).set_index("user_id").risk["hot"] == 0.91
    assert make_store().schema_version() == SCHEMA_VERSION  # reopening: nothing more to do


def test_processes_opening_one_fresh_sqlite_store_together_all_get_it(tmp_path):
    """Switching a new file to WAL takes an exclusive lock that SQLite does not wait for
    on the busy timeout: workers started together on a fresh store got "database is
    locked" on about one open in ten. Opening retries it (the store's busy timeout)."""
    import threading

    failures: list[str] = []
    for k in range(30):
        path = tmp_path / f"fresh-{k}.db"
        start = threading.Barrier(4)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                Store(f"sqlite:///{path}").close()
            except StoreError as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_v9_score_keys_migrate_to_bytewise_order(make_store, clock):
    """Schema 10 makes PostgreSQL's ``scores.user_id`` ``COLLATE "C"`` (its B-tree compares
    bytes, not through the locale). A version-9 store keeps every row and reads the same;
    ``ORDER BY user_id`` is code-point order, as SQLite's, where a locale would interleave
    case and punctuation."""
    ids = ["b", "B", "a-2", "a_1", "A", "é", "z"]
    store = make_store()
    store.upsert_scores([score(u, 0.5, k) for k, u in enumerate(ids)], history=None)
    before = store.current_scores(top_k=None, active_only=False)
    if store.dialect == "postgresql":
        table = store._bulk.table(s.scores)
        with store.engine.begin() as conn:  # version 9's column: the database's collation
            conn.execute(text(f'ALTER TABLE {table} ALTER COLUMN user_id TYPE VARCHAR(200) COLLATE "default"'))
    again, columns = _reopened_from(store, make_store, 9)
    with again.engine.connect() as conn:
        ordered = conn.execute(text(f"SELECT user_id FROM {again._bulk.table(s.scores)} ORDER BY user_id")).scalars().all()
    if again.dialect == "postgresql":
        assert columns["user_id"]["type"].collation == "C"
    assert ordered == sorted(ids)  # Python's str order is code-point order
    pd.testing.assert_frame_equal(again.current_scores(top_k=None, active_only=False), before)
    again.upsert_scores([score("é", 0.9, 100)], history=None)  # the upsert's conflict target still holds
    assert again.current_scores(top_k=1)["user_id"].tolist() == ["é"]


def _payload_compression(store: Store) -> str:
    """PostgreSQL's compression method of the segments' payload column ('' = the default)."""
    with store.engine.connect() as conn:
        return conn.execute(text(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attname = 'payload'"
        ), {"t": store._bulk.table(s.score_history_segments)}).scalar_one()  # fmt: skip


def test_v10_history_segments_compress_with_lz4_on_postgresql(make_store, clock):
    """Schema 11: PostgreSQL compresses a history segment's payload with lz4 (set on a
    fresh store and by the migration); segments written before read the same after."""
    store = make_store()
    store.upsert_scores([score(f"u{i}", i / 100, i) for i in range(50)])
    before = store.score_history()
    if store.dialect == "postgresql":
        assert _payload_compression(store) == "l"
        table = store._bulk.table(s.score_history_segments)
        with store.engine.begin() as conn:  # version 10's column: the server's default (pglz)
            conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN payload SET COMPRESSION default"))
        assert _payload_compression(store) == ""
    again, _ = _reopened_from(store, make_store, 10)
    if again.dialect == "postgresql":
        assert _payload_compression(again) == "l"
    pd.testing.assert_frame_equal(again.score_history(), before)
    again.upsert_scores([score("u1", 0.99, 3 * 24 * 60)])  # another day: a second point
    assert again.score_history(["u1"])["risk"].tolist() == [0.01, 0.99]


def _reopened_from(store: Store, make_store, version: int) -> tuple[Store, dict]:
    """Mark ``store`` as schema ``version`` (its tables already rewritten to that layout),
    close it and open it again (migrating); returns the reopened store and its ``scores``
    columns as the database describes them."""
    from sqlalchemy import inspect

    with store.engine.begin() as conn:
        conn.execute(update(s.schema_version).values(version=version))
    store.close()
    again = make_store()
    assert again.schema_version() == SCHEMA_VERSION > version
    with again.engine.connect() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("scores", schema=again.schema)}
    return again, columns
