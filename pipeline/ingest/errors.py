"""Errors of the importer (subclasses of :class:`pipeline.errors.ChurnError`, so the CLI
prints them as one line and exits 1)."""

from __future__ import annotations

from pipeline.errors import ChurnError


class MappingError(ChurnError, ValueError):
    """The mapping file is invalid; the message names the bad key (``fields.session.device``)."""


class SourceError(ChurnError):
    """A source file cannot be read as mapped (unknown format, missing column, unreadable)."""


class RejectedShareError(ChurnError):
    """Too many rows failed validation: nothing was written (a broken mapping is loud)."""

    def __init__(self, message: str, summary: object = None) -> None:
        super().__init__(message)
        self.summary = summary  # the ImportSummary, for the CLI to print


class MappingChangedError(ChurnError):
    """An import under a mapping that cannot apply to the topic: every file was already
    written under another mapping, or the new mapping's profile (churn definition, feature
    spec) differs from the one the topic's events were made by. Nothing is written and the
    topic's profile is left as it was (an import never rewrites the log)."""


class StaleLedgerError(ChurnError):
    """The import ledger records finished imports that the topic does not hold (the topic
    was deleted and recreated, or this is another log): trusting it would skip their files
    as already imported and they would never reach this topic. Nothing is written."""
