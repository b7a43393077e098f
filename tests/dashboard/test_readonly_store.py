"""``Store(url, read_only=True)``, the dashboard's way in: creates, migrates and writes
nothing, on SQLite and on the PostgreSQL server at 127.0.0.1:5432."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from pipeline.errors import StoreError, StoreSchemaError
from pipeline.store import SCHEMA_VERSION, Store, schema
from tests.needs import pg_unavailable
from tests.store.conftest import PG_URLS, drop_schema, pg_url

T = datetime(2026, 3, 1, tzinfo=UTC)
ROW = {"user_id": "u1", "risk": 0.8, "model_version": "1", "features_time": T}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        yield {"url": f"sqlite:///{tmp_path / 'churn.db'}"}
        return
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    schema = f"ro_{uuid.uuid4().hex[:12]}"
    try:
        yield {"url": url, "schema": schema}
    finally:
        drop_schema(url, schema)


def test_reads_what_the_writer_wrote_and_refuses_to_write(location) -> None:
    with Store(**location) as writer:
        writer.upsert_scores([ROW])
    with Store(**location, read_only=True) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.current_scores(top_k=None)["user_id"].tolist() == ["u1"]
        with pytest.raises(StoreError, match="opened read-only: it cannot be written"):
            store.upsert_scores([ROW | {"risk": 0.1}])
        with pytest.raises(StoreError, match="read-only"):
            store.prune(T)
        # and the database itself refuses, should anything bypass the store's methods
        with pytest.raises(DBAPIError, match="(?i)read.?only"), store.engine.connect() as conn:
            conn.execute(delete(schema.scores))  # (a Core statement: schema-translated)
        assert store.current_scores(top_k=None)["risk"].tolist() == [0.8]


def test_missing_sqlite_file_is_an_error_and_nothing_is_created(tmp_path) -> None:
    db = tmp_path / "not" / "there" / "churn.db"
    with pytest.raises(StoreError, match=r"does not exist yet: run the stream \(`churn stream`\)"):
        Store(f"sqlite:///{db}", read_only=True)
    assert not (tmp_path / "not").exists()


def test_in_memory_store_cannot_be_read_only() -> None:
    with pytest.raises(StoreError, match="in-memory store cannot be opened read-only"):
        Store("sqlite://", read_only=True)


def test_a_store_without_tables_says_to_run_the_stream(tmp_path) -> None:
    db = tmp_path / "churn.db"
    sqlite3.connect(db).close()  # an empty database file
    with pytest.raises(StoreSchemaError, match="holds no churn tables yet: run the stream"):
        Store(f"sqlite:///{db}", read_only=True)


@pytest.mark.parametrize(
    ("version", "words"),
    [
        (SCHEMA_VERSION - 1, "older than this code's"),
        (SCHEMA_VERSION + 1, "newer than this code's"),
    ],
)
def test_another_schema_version_is_one_clear_line_and_is_left_alone(
    location, version, words
) -> None:
    table = schema.schema_version
    with (
        Store(**location) as writer,
        writer.engine.begin() as conn,
    ):  # translated to the test schema
        conn.execute(update(table).values(version=version))
        engine = writer.engine
    with pytest.raises(
        StoreSchemaError, match=f"schema version {version}, {words} {SCHEMA_VERSION}"
    ):
        Store(**location, read_only=True)
    with engine.connect() as conn:  # not migrated, not stamped
        assert conn.execute(select(table.c.version)).scalar() == version
    engine.dispose()
