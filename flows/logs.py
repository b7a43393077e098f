"""Expected failures (a :class:`pipeline.errors.ChurnError`: a corrupt checkpoint, a broken
MLflow database, a missing champion) are one line in Prefect's run logs, not a traceback:
their message already says what is wrong and how to fix it. Anything else keeps its
traceback."""

from __future__ import annotations

import logging

from pipeline.errors import ChurnError

RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.flow_engine", "prefect.task_engine")


class OneLineErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ChurnError):
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = OneLineErrors()


def one_line_errors() -> None:
    """Install the filter on Prefect's run loggers (idempotent; call at the start of a flow)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
