"""Fixtures of the multi-host tests: a fresh PostgreSQL database per test, librdkafka's mock
cluster, an MLflow registry (SQLite) holding a tiny champion, and a simulated history with
its uninterrupted single-host reference run."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pipeline.store import Store
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.worker import Worker
from pipeline.testing.kafka import MockCluster
from pipeline.testing.stream import simulated_log
from tests.needs import pg_unavailable
from tests.store.conftest import PG_URLS, pg_url

PARTITIONS = 4
_ids = itertools.count()


def fresh_database(prefix: str = "scale") -> tuple[str, str]:
    """``(url, name)`` of a new empty database on the test server (own name: parallel runs)."""
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def drop_database(name: str) -> None:
    admin = create_engine(pg_url(), isolation_level="AUTOCOMMIT")  # type: ignore[arg-type]
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def pg_db() -> Iterator[str]:
    url, name = fresh_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockCluster]:
    with MockCluster() as m:
        if not m.exact_partitions:
            pytest.skip("needs librdkafka's C mock API for 4-partition topics plus a .dlq")
        yield m


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory) -> str:
    """An MLflow registry with churn v1 (a tiny XGBoost model) as champion."""
    from pipeline.testing.registry import register_tiny_champion

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    assert register_tiny_champion(uri) == "1"
    return uri


def reference(root: Path, registry_uri: str, values: dict[int, list[bytes]], topic: str) -> tuple:
    """One uninterrupted in-process worker over ``values`` (file log, file checkpoints),
    scoring with the champion fetched from the registry exactly as a worker host does;
    returns (scores frame, {partition: checkpointed next offset})."""
    import logging

    from pipeline.log.file import open_log
    from pipeline.stream.host import RegistryFeed
    from tests.stream.helpers import scores

    cfg = StreamConfig(group="test", batch_size=100, max_wait_s=0.0, checkpoint_interval_s=3600)
    paths = StreamPaths(root, "test")
    RegistryFeed(registry_uri, paths, cfg, logging.getLogger("test")).fetch()
    log = open_log(root / "log", topic, num_partitions=PARTITIONS)
    for p, vals in values.items():
        log.append(p, vals)
    url, name = fresh_database("ref")
    try:
        with Store(url) as store:
            Worker("ref", log, store, paths, cfg, partitions=range(PARTITIONS)).run(until_caught_up=True)
            want = scores(store)
    finally:
        drop_database(name)
    log.close()
    from pipeline.stream.checkpoint import CheckpointStore

    ck = CheckpointStore(paths.checkpoints, topic, "test")
    return want, {p: ck.read(p).meta.next_offset for p in range(PARTITIONS)}


@pytest.fixture(scope="module")
def history(tmp_path_factory, registry_uri) -> tuple[dict[int, list[bytes]], object, dict[int, int]]:
    """A simulated 4-partition history (record values) and its single-host reference."""
    root = tmp_path_factory.mktemp("scale-history")
    log = simulated_log(root / "sim" / "log", users=400, days=30, partitions=PARTITIONS, seed=5)
    values = {p: [r.value for r in log.iter_records(p, 0)] for p in range(PARTITIONS)}
    log.close()
    want, offsets = reference(root / "ref", registry_uri, values, "events")
    return values, want, offsets


def kafka_topic(mock: MockCluster, values: dict[int, list[bytes]]) -> str:
    """A fresh topic (and its .dlq) on the mock holding ``values`` at the same offsets."""
    from pipeline.log.kafka import KafkaLog

    topic = f"events-{next(_ids)}-{uuid.uuid4().hex[:6]}"
    mock.create_topic(topic, PARTITIONS)
    mock.create_topic(f"{topic}.dlq", PARTITIONS)
    with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
        for p, vals in values.items():
            for i in range(0, len(vals), 2_000):
                log.append(p, vals[i : i + 2_000])
    return topic
