"""Flow tests: a small simulation and a temp MLflow store (the Prefect harness is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history


@pytest.fixture(scope="session")
def small_history(tmp_path_factory) -> Path:
    """3,000 users x 100 days: enough for a 14-day horizon split (train/val/test)."""
    data = tmp_path_factory.mktemp("data")
    log = open_log(data / "log", "events", num_partitions=2)
    try:
        simulate_history(Simulator(SimConfig(users=3_000, days=100, seed=7)), log, data / "sim")
    finally:
        log.close()
    return data


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"
