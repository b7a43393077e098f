"""Stream fixtures: a small simulated file log, a SQLite store, a published tiny champion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.log import open_log
from pipeline.store import Store
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.testing.stream import publish_tiny_champion, simulated_log


@pytest.fixture(scope="session")
def history_template(tmp_path_factory) -> Path:
    """600 users x 30 days on 2 partitions (~12k events), simulated once per session."""
    root = tmp_path_factory.mktemp("history")
    simulated_log(root / "log", users=600, days=30, partitions=2, seed=5).close()
    return root


@pytest.fixture
def data_dir(tmp_path, history_template) -> Path:
    """A private copy of the history (tests append to it, commit offsets, dead-letter)."""
    shutil.copytree(history_template / "log", tmp_path / "data" / "log")
    return tmp_path / "data"


@pytest.fixture
def log(data_dir):
    log = open_log(data_dir / "log", "events", create=False)
    yield log
    log.close()


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock())
    yield s
    s.close()


@pytest.fixture
def paths(data_dir) -> StreamPaths:
    return StreamPaths(data_dir, "test")


@pytest.fixture
def champion(paths):
    return publish_tiny_champion(paths, version="1")


@pytest.fixture
def cfg() -> StreamConfig:
    return StreamConfig(
        group="test",
        batch_size=500,
        max_wait_s=0.0,
        checkpoint_interval_s=3600.0,
        flush_interval_s=0.05,
        metrics_interval_s=3600.0,
    )
