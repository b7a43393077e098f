"""Expected failures (a :class:`pipeline.errors.ChurnError`: a corrupt checkpoint, a broken
MLflow database, a missing champion) are one line in Prefect's run logs, not a traceback:
their message already says what is wrong and how to fix it. Anything else keeps its
traceback."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.errors import ChurnError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.flow_engine", "prefect.task_engine")


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ChurnError):
            record.exc_info, record.exc_text = None, None
            record.churn_error = True  # for ExpectedFailures, whichever filter runs first
        return True


_FILTER = OneLineErrors()


def one_line_errors() -> None:
    """Install the filter on Prefect's run loggers (idempotent; call at the start of a flow)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# The engine's own messages about a failed run (prefect.task_engine / prefect.flow_engine):
# the first carries the exception, the "Finished in state Failed(...)" after it does not.
_FAILED = ("Task run failed with", "Encountered exception during execution")
_FINISHED = "Finished in state"


_STATE_EXCEPTION = re.compile(r"^Finished in state Failed\('(?:Task|Flow) run encountered an exception:? (\w+):")


def _churn_error_names() -> set[str]:
    """The class names of ChurnError and every subclass defined so far."""
    names, todo = set(), [ChurnError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


class ExpectedFailures(logging.Filter):
    """Drop the engine's failure records of a task or flow run that failed with a ChurnError.

    one_line_errors() strips their tracebacks, but the engine still logs four lines per
    failure (task: "failed with exception", "Finished in state Failed"; flow: "Encountered
    exception", "Finished in state Failed"), each repeating the message the command line
    then prints as its one ``error:`` line. A run that failed with anything else keeps all
    of them, traceback included."""

    def __init__(self) -> None:
        super().__init__()
        self._quiet: set[tuple[str, object]] = set()  # (logger, run id) whose failure was a ChurnError

    def filter(self, record: logging.LogRecord) -> bool:
        run = (record.name, getattr(record, "task_run_id" if record.name.endswith("task_runs") else "flow_run_id", None))
        msg = str(record.msg)
        exc = record.exc_info[1] if record.exc_info else None
        expected = isinstance(exc, ChurnError) or getattr(record, "churn_error", False)
        if expected and msg.startswith(_FAILED):
            self._quiet.add(run)
            return False
        if msg.startswith(_FINISHED) and run in self._quiet:
            self._quiet.discard(run)
            return False
        # A task run's failure does not always come with a "failed with" record first (the
        # train flow's tasks: only "Finished in state Failed('Task run encountered an
        # exception FeatureError: ...')"): its state message names the exception's class.
        named = _STATE_EXCEPTION.search(msg) if msg.startswith(_FINISHED) else None
        return not (named and named.group(1) in _churn_error_names())


@contextmanager
def quiet_expected_failures() -> Iterator[None]:
    """While a command line runs a flow in-process and prints a ChurnError itself as one
    ``error:`` line: keep the engine's failure lines of that error off the terminal.
    Served runs do not use this: their run logs keep the failure line."""
    one_line_errors()
    quiet = ExpectedFailures()
    loggers = [logging.getLogger(name) for name in ("prefect.task_runs", "prefect.flow_runs")]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
