"""Drift runs in the store (schema version 2): the writer the drift monitor calls and
the readers the dashboard and ``churn drift`` use.

A run is recorded from any object with the attributes of
:class:`pipeline.drift.check.DriftResult` (duck-typed: the store does not import the
drift package). Recording the same run again (same source, model version and time)
rewrites nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, select

from pipeline.errors import InvalidRowError
from pipeline.store import schema as s
from pipeline.store.internals import StoreInternals
from pipeline.store.rows import check_time

LEVELS = ("Healthy", "Warning", "Critical")
CHECKED, SKIPPED, FAILED = "checked", "skipped", "failed"
STATUSES = (CHECKED, SKIPPED, FAILED)


def _finite(value: Any, what: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise InvalidRowError(f"drift run {what}={value!r}: use a finite number")
    return v


def run_id(source: str, model_version: str, at: datetime) -> str:
    return f"{source}/{model_version}/{check_time(at, 'drift run time').isoformat()}"


class DriftRuns(StoreInternals):
    """Mixin of :class:`pipeline.store.Store` (needs ``codec``, ``_write``, ``_read``, ``_upsert``, ``_frame``)."""

    def record_drift_run(self, run: Any, *, level: str, reasons: Sequence[str] = (), source: str = "stream") -> str:
        """Store one check (its per-feature rows too) in one transaction; return its ``run_id``."""
        if level not in LEVELS:
            raise InvalidRowError(f"drift run level {level!r}: use one of {', '.join(LEVELS)}")
        if not (isinstance(source, str) and source):
            raise InvalidRowError(f"drift run source {source!r}: use a non-empty name (e.g. the worker id)")
        at = check_time(run.time, "drift run time")
        rid = run_id(source, str(run.model_version), at)
        when = self.codec.one(at)
        opt = lambda t: None if t is None else self.codec.one(check_time(t, "drift window bound"))  # noqa: E731
        pred = run.prediction
        row = {
            "run_id": rid, "time": when, "window_start": opt(run.window_start), "window_end": opt(run.window_end),
            "model_version": str(run.model_version), "source": source, "rows": int(run.rows),
            "reference_rows": int(run.reference_rows), "features": len(run.features),
            "drifted_count": int(run.drifted_count), "drifted_share": _finite(run.drifted_share, "drifted_share"),
            "dataset_drift": bool(run.dataset_drift),
            "prediction_method": None if pred is None else str(pred.method),
            "prediction_score": None if pred is None else _finite(pred.score, "prediction score"),
            "prediction_threshold": None if pred is None else float(pred.threshold),
            "prediction_drift": None if pred is None else bool(pred.drifted),
            "level": level, "reasons": list(reasons), "report_path": run.report_path,
            "seconds": None if run.seconds is None else float(run.seconds), "status": CHECKED,
        }  # fmt: skip
        feats = [{"run_id": rid, "feature": str(f.feature), "time": when, "method": str(f.method),
                  "score": _finite(f.score, f"score of {f.feature}"), "threshold": float(f.threshold),
                  "drifted": bool(f.drifted)} for f in run.features]  # fmt: skip
        with self._write() as conn:
            conn.execute(self._upsert(s.drift_runs, ("run_id",), ()), [row])
            if feats:
                conn.execute(self._upsert(s.drift_features, ("run_id", "feature"), ()), feats)
        return rid

    def record_drift_status(
        self, *, time: datetime, model_version: str, status: str, reason: str, rows: int = 0,
        source: str = "stream", window_start: datetime | None = None, window_end: datetime | None = None,
    ) -> str:
        """Store a check that came due but did not produce metrics: ``status`` "skipped"
        (it could not run, e.g. too few rows) or "failed" (it raised), with ``reason``."""
        if status not in (SKIPPED, FAILED):
            raise InvalidRowError(f"drift run status {status!r}: use {SKIPPED!r} or {FAILED!r} "
                                  "(a checked run is stored with record_drift_run)")  # fmt: skip
        if not (isinstance(reason, str) and reason.strip()):
            raise InvalidRowError(f"a {status} drift run needs its reason (got {reason!r}): say why, with the remedy")
        if not (isinstance(source, str) and source):
            raise InvalidRowError(f"drift run source {source!r}: use a non-empty name (e.g. the worker id)")
        at = check_time(time, "drift run time")
        rid = run_id(source, str(model_version), at)
        opt = lambda t: None if t is None else self.codec.one(check_time(t, "drift window bound"))  # noqa: E731
        row = {
            "run_id": rid, "time": self.codec.one(at), "window_start": opt(window_start), "window_end": opt(window_end),
            "model_version": str(model_version), "source": source, "rows": int(rows), "reference_rows": 0,
            "features": 0, "drifted_count": 0, "drifted_share": 0.0, "dataset_drift": False,
            "level": status.capitalize(), "reasons": [reason], "status": status, "status_reason": reason,
        }  # fmt: skip
        with self._write() as conn:
            conn.execute(self._upsert(s.drift_runs, ("run_id",), ()), [row])
        return rid

    def drift_runs(self, since: datetime | None = None, *, model_version: str | None = None,
                   status: str | Sequence[str] | None = CHECKED) -> pd.DataFrame:
        """Runs at or after ``since`` (all if None), oldest first: one row per check.

        ``status``: the checks that ran ("checked", the default), "skipped", "failed", a
        list of them, or None for every check that came due."""
        c = s.drift_runs.c
        q = select(s.drift_runs).order_by(c.time, c.run_id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            bad = [x for x in wanted if x not in STATUSES]
            if bad:
                raise InvalidRowError(f"drift run status {bad}: use {', '.join(STATUSES)} or None for all")
            q = q.where(c.status.in_(wanted))
        if since is not None:
            q = q.where(c.time >= self._since(since, "since"))
        if model_version is not None:
            q = q.where(c.model_version == str(model_version))
        df = self._frame(q, ("time", "window_start", "window_end"))
        for col in ("dataset_drift", "prediction_drift"):
            df[col] = df[col].astype("boolean")
        return df

    def drift_features(self, since: datetime | None = None, *, run_id: str | None = None) -> pd.DataFrame:
        """Per-feature rows (``run_id``, ``feature``, ``time``, ``method``, ``score``,
        ``threshold``, ``drifted``) at or after ``since``, by time then feature."""
        c = s.drift_features.c
        q = select(s.drift_features).order_by(c.time, c.run_id, c.feature)
        if since is not None:
            q = q.where(c.time >= self._since(since, "since"))
        if run_id is not None:
            q = q.where(c.run_id == run_id)
        df = self._frame(q, ("time",))
        df["drifted"] = df["drifted"].astype(bool)
        return df

    def prune_drift(self, before: datetime) -> dict[str, int]:
        """Delete drift runs (and their feature rows) older than ``before``."""
        t = self.codec.one(check_time(before, "prune before"))
        with self._write() as conn:
            return {table.name: conn.execute(delete(table).where(table.c.time < t)).rowcount
                    for table in (s.drift_features, s.drift_runs)}
