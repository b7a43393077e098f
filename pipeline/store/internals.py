"""What the store's mixins (drift runs, realised performance) call on :class:`pipeline.store.Store`.

Declared once here so each mixin states its needs by inheriting, not by copying the stubs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table
from sqlalchemy.sql.dml import Insert

from pipeline.store.rows import TimeCodec


class StoreInternals:
    """``codec``, ``_write``, ``_upsert``, ``_frame``, ``_since``: provided by :class:`pipeline.store.Store`."""

    codec: TimeCodec

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _upsert(self, table: Table, keys: Sequence[str], update_cols: Sequence[str]) -> Insert:
        raise NotImplementedError

    def _frame(self, query: Any, times: Sequence[str] = ()) -> pd.DataFrame:
        raise NotImplementedError

    def _since(self, since: datetime | None, what: str) -> Any:
        raise NotImplementedError
