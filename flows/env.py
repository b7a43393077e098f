"""Process-level defaults for running flows locally (no server configured).

A temporary Prefect API server starts in-process when ``PREFECT_API_URL`` is unset: give it
time on a busy machine and keep it and MLflow quiet. Users can still override any of these;
only entry points (the ``churn`` command line, ``flows.serve``, benchmarks) call this.
"""

from __future__ import annotations

import os

DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DO_NOT_TRACK": "true",
}


def env_defaults() -> None:
    """Set each default unless the environment already has a value (cheap: imports nothing;
    the ``churn`` command line calls it first, so no command sends MLflow or Prefect
    telemetry or writes MLflow's telemetry file)."""
    for k, v in DEFAULTS.items():
        os.environ.setdefault(k, v)


def local_defaults() -> None:
    """:func:`env_defaults`; and when flows will run on a temporary Prefect server, tie that
    server's life to this process (:mod:`flows.reaper`: a SIGKILLed ``churn stream`` no
    longer leaves it running)."""
    env_defaults()
    from flows.reaper import tie_to_owner

    tie_to_owner()


def quiet_environment() -> None:
    """Inside a flow run: the local defaults above, and expected errors (ChurnError) as one
    line in the run log instead of a traceback."""
    local_defaults()
    from flows.logs import one_line_errors

    one_line_errors()
