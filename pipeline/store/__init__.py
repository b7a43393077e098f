"""The store the stream writes and the dashboard reads: SQLite (WAL) by default,
PostgreSQL by URL. See :mod:`pipeline.store.store` for the write rules and
:mod:`pipeline.store.migrations` for schema versions.

>>> from pipeline.clock import FakeClock
>>> store = Store("sqlite://", clock=FakeClock())
>>> store.schema_version()
11
"""

from pipeline.store.engine import open_engine, parse_url
from pipeline.store.migrations import SCHEMA_VERSION
from pipeline.store.records import HistoryPolicy, ScoreSummary, StreamMetric, WriteResult
from pipeline.store.rows import ScoreColumns, ScoreRow
from pipeline.store.store import Store

__all__ = [
    "SCHEMA_VERSION",
    "HistoryPolicy",
    "ScoreColumns",
    "ScoreRow",
    "ScoreSummary",
    "Store",
    "StreamMetric",
    "WriteResult",
    "open_engine",
    "parse_url",
]
