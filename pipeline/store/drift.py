"""Drift runs (schema version 2), drift episodes and retrain decisions (version 6) in
the store: the writers the drift monitor calls and the readers the dashboard and
``churn drift`` use.

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
from sqlalchemy import delete, func, select

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


EPISODE_STATUSES = ("open", "retraining", "closed")
# pipeline.drift.episodes.DECISIONS in the order one check takes them (the store does not import drift)
DECISION_ORDER = ("episode opened", "deferred", "requested", "skipped: cooldown", "skipped: no requester", "sent",
                  "failed to send", "episode closed", "episode resolved")


class DriftEpisodes(StoreInternals):
    """Mixin of :class:`pipeline.store.Store`: drift episodes and retrain decisions
    (schema version 6, :mod:`pipeline.drift.episodes`)."""

    def open_episode(self, *, model_version: str, onset: datetime, opened_at: datetime, reason: str,
                     now: datetime) -> str:
        """Store a new open episode (or return the one already open for ``model_version``)."""
        have = self.current_episode(str(model_version))
        if have is not None:
            return str(have["episode_id"])
        onset_t, opened_t = check_time(onset, "episode onset"), check_time(opened_at, "episode opened_at")
        if onset_t > opened_t:
            raise InvalidRowError(f"episode onset {onset_t} is after the check that opened it ({opened_t})")
        eid = f"{model_version}/{onset_t.date().isoformat()}/{opened_t.isoformat()}"
        row = {"episode_id": eid, "model_version": str(model_version), "onset": self.codec.one(onset_t),
               "opened_at": self.codec.one(opened_t), "status": "open", "status_reason": reason,
               "closed_at": None, "updated_at": self.codec.one(check_time(now, "now"))}
        with self._write() as conn:
            conn.execute(self._upsert(s.drift_episodes, ("episode_id",), ()), [row])
        return eid

    def set_episode_status(self, episode_id: str, status: str, reason: str, *, now: datetime,
                           closed_at: datetime | None = None) -> None:
        if status not in EPISODE_STATUSES:
            raise InvalidRowError(f"episode status {status!r}: use one of {', '.join(EPISODE_STATUSES)}")
        values = {"status": status, "status_reason": reason, "updated_at": self.codec.one(check_time(now, "now"))}
        if closed_at is not None:
            values["closed_at"] = self.codec.one(check_time(closed_at, "closed_at"))
        with self._write() as conn:
            conn.execute(s.drift_episodes.update().where(s.drift_episodes.c.episode_id == episode_id).values(**values))

    def drift_episodes(self, *, model_version: str | None = None) -> pd.DataFrame:
        """Every episode, oldest onset first."""
        c = s.drift_episodes.c
        q = select(s.drift_episodes).order_by(c.onset, c.episode_id)
        if model_version is not None:
            q = q.where(c.model_version == str(model_version))
        return self._frame(q, ("onset", "opened_at", "closed_at", "updated_at"))

    def current_episode(self, model_version: str) -> dict[str, Any] | None:
        """The newest episode of ``model_version`` that is not closed (None: none)."""
        eps = self.drift_episodes(model_version=model_version)
        eps = eps[eps["status"] != "closed"]
        return None if eps.empty else eps.iloc[-1].to_dict()

    def record_retrain_decision(self, *, time: datetime, model_version: str, decision: str, reason: str,
                                episode_id: str | None = None, due: datetime | None = None, run: str | None = None,
                                source: str = "stream", now: datetime) -> str:
        """One retrain decision (requested / deferred until ``due`` / sent / failed to send /
        skipped ...) with its reason; the same decision at the same time is stored once."""
        if not (isinstance(reason, str) and reason.strip()):
            raise InvalidRowError(f"retrain decision {decision!r} needs its reason (got {reason!r})")
        if not (isinstance(decision, str) and decision):
            raise InvalidRowError(f"retrain decision {decision!r}: name it (pipeline.drift.episodes.DECISIONS)")
        at = check_time(time, "decision time")
        did = f"{episode_id or model_version}/{at.isoformat()}/{decision}"
        row = {"decision_id": did, "time": self.codec.one(at), "episode_id": episode_id,
               "model_version": str(model_version), "decision": decision, "reason": reason,
               "due": None if due is None else self.codec.one(check_time(due, "due")), "run": run, "source": source,
               "recorded_at": self.codec.one(check_time(now, "now"))}
        with self._write() as conn:
            conn.execute(self._upsert(s.retrain_decisions, ("decision_id",), ("reason", "due", "run", "recorded_at")),
                         [row])
        return did

    def retrain_decisions(self, *, episode_id: str | None = None) -> pd.DataFrame:
        """Every retrain decision, oldest first."""
        c = s.retrain_decisions.c
        q = select(s.retrain_decisions).order_by(c.time, c.recorded_at, c.decision_id)
        if episode_id is not None:
            q = q.where(c.episode_id == episode_id)
        df = self._frame(q, ("time", "due", "recorded_at"))
        if df.empty:
            return df
        # decisions of one check in the order they were taken (opened, then deferred/requested, then sent)
        step = df["decision"].map({d: i for i, d in enumerate(DECISION_ORDER)}).fillna(len(DECISION_ORDER))
        return df.assign(_step=step).sort_values(["time", "recorded_at", "_step"], kind="stable").drop(
            columns="_step").reset_index(drop=True)

    def cancels_since(self, since: datetime) -> int:
        """Users whose newest score row marks a cancel (``active`` false) with features
        time after ``since``: the churners since then (a user who came back is not counted)."""
        c = s.scores.c
        q = select(func.count()).select_from(s.scores).where(c.active.is_(False)).where(
            c.features_time > self.codec.score_time(check_time(since, "since")))
        return int(self._frame(q).iloc[0, 0])


class DriftRuns(DriftEpisodes):
    """Mixin of :class:`pipeline.store.Store` (needs ``codec``, ``_write``, ``_read``, ``_upsert``, ``_frame``); with the episodes."""

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
