"""When a failed task is worth another try.

Tasks retry what may pass on a second try: a busy MLflow or Prefect server, a file
another process was writing. They do not retry the project's own refusals
(:class:`~pipeline.errors.ChurnError`: too short a history for the horizon, no event log,
a missing champion), which fail the same way after the delay: ``churn train`` on 15 days
of imported events waited 5 s and printed "Retry 1/1 will start" before its one-line
error.
"""

from __future__ import annotations

from typing import Any


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the task raised a ``ChurnError``."""
    from pipeline.errors import ChurnError

    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - the exception is not readable: keep the retry policy
        return True
    return not isinstance(exc, ChurnError)
