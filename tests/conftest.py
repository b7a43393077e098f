"""Fixtures shared by several test packages."""

from __future__ import annotations

import os
import sys

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


# pytest's fixtures that point sys.stderr at a buffer of the test's own, closed when it ends
STDERR_CAPTURES = frozenset({"capsys", "capsysbinary", "capfd", "capfdbinary"})


@pytest.fixture(autouse=True)
def _prefect_logs_to_the_sessions_stderr(request) -> None:
    """Prefect sets up logging once per process, when ``prefect.main`` is first imported:
    the console handler it puts on the root logger keeps whatever ``sys.stderr`` was then.
    If that first import happens inside a test holding ``capsys`` (``flows.serve.deployments()``
    and ``flows.deploy.main()`` import Prefect lazily), the handler keeps that test's buffer,
    closed when the test ends, and every later warning that reaches the root logger, in any
    test, prints "--- Logging error ---" into that test's stderr. A full run hides it
    (collecting ``tests/flows`` imports Prefect first); a selection of tests does not. So
    Prefect is imported before the capture starts (autouse fixtures are set up before the
    ones a test asks for) and its handler writes to pytest's session-long stderr, as in a
    full run."""
    if STDERR_CAPTURES & set(request.fixturenames):
        import prefect.main  # noqa: F401 - importing it is what runs Prefect's setup_logging()


@pytest.fixture(autouse=True)
def _prefect_events_worker_stopped():
    """A flow run starts Prefect's events worker: a websocket to the API on Prefect's event
    loop thread, which outlives the test (the harness server is session-wide) and keeps
    pinging (keepalive, every 10-20 s). ``websockets`` draws each ping's payload from the
    global ``random``, so a ping that lands while Hypothesis draws a later test's inputs is
    reported as "Do not use the `random` module inside strategies" against a strategy that
    never does. Draining the worker when the test that started it ends delivers its queued
    events and closes the websocket; the next flow run starts a new one."""
    yield
    worker = sys.modules.get("prefect.events.worker")
    if worker is not None:
        worker.EventsWorker.drain_all(timeout=30)  # bounded: the server may already be gone
