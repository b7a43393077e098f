"""Store fixtures: every test runs against SQLite (WAL file) and the PostgreSQL server on
127.0.0.1:5432 (database ``test``), each PostgreSQL test in its own schema, dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from pipeline.clock import FakeClock
from pipeline.store import Store
from tests.needs import pg_unavailable
from tests.store.helpers import T0

# CHURN_TEST_PG_URL, when set, is the only server tried
PG_URLS = [os.environ["CHURN_TEST_PG_URL"]] if os.environ.get("CHURN_TEST_PG_URL") else [
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
]
BACKENDS = ["sqlite", "postgresql"]

_pg: dict[str, str | None] = {}


def pg_url() -> str | None:
    """The first PostgreSQL URL that answers (cached), else None."""
    if "url" not in _pg:
        _pg["url"] = None
        for url in PG_URLS:
            engine = create_engine(url, connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except OperationalError:
                continue
            finally:
                engine.dispose()
            _pg["url"] = url
            break
    return _pg["url"]


def drop_schema(url: str, schema: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture
def pg() -> str:
    """The PostgreSQL server's URL (a test on it alone); a failure in CI when none answers."""
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """``{"url": ..., "schema": ...}`` of a fresh, empty store location per test."""
    if request.param == "sqlite":
        yield {"url": f"sqlite:///{tmp_path / 'store' / 'churn.db'}", "schema": None}
        return
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield {"url": url, "schema": schema}
    finally:
        drop_schema(url, schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(days=1))


@pytest.fixture
def make_store(backend: dict[str, str | None], clock: FakeClock) -> Iterator[Callable[..., Store]]:
    """``make_store(clock=None)``: a Store on the test's backend (closed afterwards)."""
    opened: list[Store] = []

    def factory(clock_: FakeClock | None = None) -> Store:
        store = Store(str(backend["url"]), schema=backend["schema"], clock=clock_ or clock)
        opened.append(store)
        return store

    yield factory
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()
