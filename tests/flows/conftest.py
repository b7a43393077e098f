"""Flow tests: one Prefect test harness per session, a small simulation, a temp MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history

QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    old = {k: os.environ.get(k) for k in QUIET}
    os.environ.update(QUIET)
    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
