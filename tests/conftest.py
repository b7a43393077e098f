"""Fixtures shared by several test packages."""

from __future__ import annotations

import os

import pytest

# Quiet, offline Prefect/MLflow for in-process runs (no telemetry, no progress bars).
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API server for every flow run in the session (started on
    first use, ~10-20 s, stopped at the end of the session)."""
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
