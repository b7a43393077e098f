"""Retried tasks retry what may pass on a second try, not the project's own refusals."""

from __future__ import annotations

import pytest
from prefect.states import Failed

from flows import realised, train
from flows.retries import transient
from pipeline.errors import ChurnError, SplitError, StoreError


@pytest.mark.parametrize(("exc", "again"), [
    (SplitError("15 days of activity cannot fit a 30-day warm-up"), False),
    (StoreError("no champion"), False),
    (ChurnError("any refusal of ours"), False),
    (OSError("connection reset by peer"), True),
    (TimeoutError("MLflow did not answer"), True),
])
def test_only_errors_that_may_pass_on_a_second_try_are_retried(exc, again) -> None:
    assert transient(None, None, Failed(data=exc)) is again


def test_every_task_with_retries_asks_first() -> None:
    tasks = [getattr(m, n) for m in (train, realised) for n in dir(m)]
    retried = [t for t in tasks if getattr(t, "retries", 0) and hasattr(t, "retry_condition_fn")]
    assert {t.name for t in retried} >= {"build-snapshots", "references", "register", "gate", "champion-horizon",
                                         "compute-realised", "log-realised-to-mlflow"}
    assert all(t.retry_condition_fn is transient for t in retried), [t.name for t in retried]
