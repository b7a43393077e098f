"""Realised performance rows in the store (schema version 4): written by
:mod:`pipeline.monitoring.update`, read by the dashboard's Model page.

One row per (scoring day, model version); writing a day again replaces its row (a
recomputation after late events is allowed to change it).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from pipeline.errors import InvalidRowError
from pipeline.store import schema as s
from pipeline.store.internals import StoreInternals
from pipeline.store.rows import check_time

_KEY = ("day", "model_version")
_FLOATS = tuple(c.name for c in s.realised_performance.columns if c.type.python_type is float)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


class RealisedRuns(StoreInternals):
    """Mixin of :class:`pipeline.store.Store` (needs ``codec``, ``_write``, ``_upsert``, ``_frame``)."""

    def record_realised(self, rows: pd.DataFrame, *, matured_at: datetime, computed_at: datetime) -> int:
        """Upsert realised-performance rows (columns of
        :data:`pipeline.monitoring.realised.COLUMNS`); returns how many."""
        if rows is None or rows.empty:
            return 0
        missing = [c for c in ("day", "model_version", "horizon_days", "n", "positives") if c not in rows.columns]
        if missing:
            raise InvalidRowError(f"realised rows lack column(s) {missing}: build them with "
                                  "pipeline.monitoring.realised.realised_performance")  # fmt: skip
        matured = self.codec.one(check_time(matured_at, "matured_at"))
        computed = self.codec.one(check_time(computed_at, "computed_at"))
        params = []
        for r in rows.to_dict("records"):
            n, k = int(r["n"]), int(r["positives"])
            if n < 0 or not 0 <= k <= n:
                raise InvalidRowError(f"realised row of {r['day']} v{r['model_version']}: n={n}, positives={k} "
                                      "(need 0 <= positives <= n)")  # fmt: skip
            day = pd.Timestamp(r["day"]).to_pydatetime()
            row = {"day": self.codec.one(check_time(day, "realised day")), "model_version": str(r["model_version"]),
                   "horizon_days": int(r["horizon_days"]), "n": n, "positives": k,
                   "matured_at": matured, "computed_at": computed}  # fmt: skip
            row |= {c: _num(r.get(c)) for c in _FLOATS}
            params.append(row)
        update = [c.name for c in s.realised_performance.columns if c.name not in _KEY]
        with self._write() as conn:
            conn.execute(self._upsert(s.realised_performance, _KEY, update), params)
        return len(params)

    def realised_performance(self, since: datetime | None = None, *, model_version: str | None = None) -> pd.DataFrame:
        """Rows with ``day`` at or after ``since`` (all if None), by day then version."""
        c = s.realised_performance.c
        q = select(s.realised_performance).order_by(c.day, c.model_version)
        if since is not None:
            q = q.where(c.day >= self._since(since, "since"))
        if model_version is not None:
            q = q.where(c.model_version == str(model_version))
        df = self._frame(q, ("day", "matured_at", "computed_at"))
        for col in _FLOATS:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
        return df
