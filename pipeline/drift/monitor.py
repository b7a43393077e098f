"""``DriftMonitor``: what the stream calls. Cheap on the hot path, checks elsewhere.

Per micro-batch the stream calls :meth:`DriftMonitor.observe` (a copy into a ring
buffer) and :meth:`DriftMonitor.step`, which collects finished checks (store row, JSON
summary, alert, event on critical drift) and, when one is due (:mod:`~.cadence`),
submits a snapshot of the window to a one-worker executor. ``executor="process"`` (the
default) runs Evidently in a child process (imported once, ~10 s, warmed at start; at
``nice`` 10, so on a busy machine scoring gets the CPU first) so neither its CPU nor the
GIL slows consumption; ``"thread"`` and ``"inline"`` exist for
tests and tiny setups. At most one check runs at a time; a due check waits for the
running one instead of queueing.

    monitor = DriftMonitor.from_bundle(bundle, version, config=cfg, store=store,
                                       report_dir=drift_dir(data_dir), clock=SystemClock())
    for batch in batches:                       # the stream's loop
        monitor.observe(frame.values, risk, frame.t, users=frame.users, active=frame.active)
        for outcome in monitor.step():          # usually empty; never blocks
            log.info("drift %s: %s", outcome.alert.level, outcome.alert.reasons)
    monitor.close()
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.autoscale.alerts import Alert, Level
from pipeline.clock import Clock, SystemClock
from pipeline.drift import episodes as ep
from pipeline.drift import reports
from pipeline.drift.alerts import assess_drift, weighted_share
from pipeline.drift.cadence import Cadence
from pipeline.drift.check import DriftResult, Skipped, run_check
from pipeline.drift.config import STOPPED, DriftConfig
from pipeline.drift.loop import RETRAIN_REQUESTED, RETRAIN_SKIPPED, RetrainCooldown
from pipeline.drift.retrain import (
    LogOnly,
    RetrainRequest,
    RetrainRequester,
    as_requester,
    load_requester,
)
from pipeline.drift.window import DriftWindow
from pipeline.errors import ConfigError
from pipeline.features.registry import FEATURE_NAMES

log = logging.getLogger(__name__)
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Failed:
    """A check that raised (the worker process died, Evidently failed, ...): stored with
    status "failed" and the exception as its reason."""

    time: datetime
    model_version: str
    rows: int
    reason: str


@dataclass(frozen=True)
class DriftOutcome:
    """One finished check as the monitor handled it."""

    result: DriftResult | Skipped | Failed
    alert: Alert
    run_id: str | None  # the store row, when a store was given and the check ran
    retrain_requested: bool  # critical, outside the cooldown: the event was emitted


def _warm() -> None:  # pay Evidently's import before the first check
    from pipeline.drift.check import _evidently

    _evidently()


CHILD_NICE = 10  # checks are background work: on a busy machine the scoring loop goes first


def _init_child(parent: int) -> None:  # the process executor's initializer
    # A terminal's Ctrl-C reaches the whole foreground group: the check process is stopped
    # by its parent (close) or with it (_exit_with_parent), never by the key, which raised
    # KeyboardInterrupt tracebacks from inside Evidently's import.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="drift-parent-watch", daemon=True).start()
    atexit.register(_exit_now)  # registered last: runs first at exit
    _warm()


def _exit_now() -> None:
    """End the check process without tearing the interpreter down. With Evidently, pandas
    and plotly loaded, finalising the modules cost ~0.6 CPU s per worker exit (measured:
    3.65 vs 3.0 s for import + exit), paid on every shutdown, handover and scale-down.
    Nothing is lost: results went to the parent synchronously (the executor's result
    queue has no feeder thread), reports are closed files, and logs are flushed here. The
    exit status is 0 either way; the executor does not read it once it shuts down."""
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _exit_with_parent(parent: int) -> None:
    """A check process must not outlive the stream worker (even one killed with SIGKILL):
    an orphan would hold ~400 MB for nothing."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


class _Inline(Executor):
    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to the future like a real executor
            fut.set_exception(exc)
        return fut


def make_executor(kind: str) -> Executor:
    if kind == "process":  # spawn: the stream process has threads; fork would copy their locks
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_child,
                                   initargs=(os.getpid(),))
    if kind == "thread":
        return ThreadPoolExecutor(1, thread_name_prefix="drift")
    return _Inline()


class DriftMonitor:
    """Window + cadence + background checks + results handling for one model version."""

    def __init__(
        self, reference: pd.DataFrame, model_version: str, *, reference_risk: np.ndarray | None = None,
        columns: Sequence[str] = FEATURE_NAMES, config: DriftConfig | None = None, store: Any | None = None,
        report_dir: Path | None = None, clock: Clock | None = None, cooldown: RetrainCooldown | None = None,
        requester: RetrainRequester | Callable[[RetrainRequest], Any] | None = None, source: str = "stream", executor: Executor | None = None,
        check: Callable[..., DriftResult | Skipped] = run_check, importance: Mapping[str, float] | None = None,
        horizon_days: int | None = None,
    ) -> None:
        self.cfg = config or DriftConfig()
        # a skipped check and Critical drift are logged here; a caller that logs every
        # outcome itself with more context (the stream's DriftHook) turns this off
        self.log_outcomes = True
        self.clock = clock or SystemClock()
        self.columns = tuple(columns)
        self.store = store
        self.report_dir = None if report_dir is None else Path(report_dir)
        self.cooldown = cooldown or (None if self.report_dir is None else RetrainCooldown(
            self.report_dir / "retrain-cooldown.json", self.cfg.retrain_cooldown_hours, self.clock))
        # who hears "retrain wanted, because ...": the caller's, else the configured import path
        self.requester = as_requester(requester) if requester is not None else load_requester(
            self.cfg.retrain_requester)
        self.source = source
        self._check = check  # a module-level function (it is pickled for the process executor)
        self.window = DriftWindow(self.columns, self.cfg.window_rows)
        self._executor = executor or (make_executor(self.cfg.executor) if self.cfg.enabled else _Inline())
        self._pending: Future | None = None
        self._pending_at: tuple[datetime, str, int] | None = None  # (asked at, model version, rows)
        self.checks = 0  # checks submitted
        self._pending_request: tuple | None = None  # decided in _handle, sent once the run is stored
        self._event_now: datetime | None = None  # event time of the newest check (decisions are in event time)
        self._healthy_checks: dict[str, int] = {}  # open episode -> Healthy checks in a row (_resolved)
        self.set_model(reference, model_version, reference_risk, importance, horizon_days)

    @classmethod
    def from_bundle(cls, bundle: Any, model_version: str, **kwargs: Any) -> DriftMonitor:
        """From :func:`pipeline.registry.load_bundle`: the reference sample, the
        model's predictions on it (the prediction-drift reference) and its feature
        importance on it (the alert weights)."""
        from pipeline.drift.importance import churn_model_importance

        risk = np.asarray(bundle.model.predict_proba(bundle.reference), np.float64)
        kwargs.setdefault("importance", churn_model_importance(bundle.model, bundle.reference))
        return cls(bundle.reference, model_version, reference_risk=risk, **kwargs)

    def set_model(self, reference: pd.DataFrame, model_version: str, reference_risk: np.ndarray | None = None,
                  importance: Mapping[str, float] | None = None, horizon_days: int | None = None) -> None:
        """A new champion: its reference, its feature importance (None: alerts weigh
        every feature alike), its label horizon (how long a retrain waits after a drift
        onset, unless configured: :meth:`DriftConfig.after_days`) and an empty window
        (risks of the old model are not comparable with the new one's reference predictions)."""
        self.importance = dict(importance or {})
        self.horizon_days = horizon_days
        old = getattr(self, "model_version", None)
        if old is not None and old != str(model_version):
            self._close_episode(old, str(model_version))
        if not isinstance(reference, pd.DataFrame):
            raise ConfigError(f"drift reference must be a DataFrame of feature columns, got {type(reference).__name__}")
        self.reference = reference.reset_index(drop=True)
        self.reference_risk = None if reference_risk is None else np.asarray(reference_risk, np.float64)
        self.model_version = str(model_version)
        self.window.clear()
        self.cadence = Cadence(self.cfg.every_rows, self.cfg.every_minutes, self.cfg.per_event_day)
        self.cadence.start(self.clock.monotonic())
        if old is not None and old != self.model_version:
            # a new champion's first window is checked as soon as it holds enough rows: by
            # the day rule it waited for the next event day, and that window replaced it
            self.cadence.reopen(f"the first window of the new champion v{self.model_version}", self.cfg.min_rows)
        missing = [c for c in self.reference.columns if c not in self.columns]
        if missing:
            log.warning("reference of model %s has column(s) the stream does not observe: %s", model_version, missing)

    # -- hot path ------------------------------------------------------------------------
    def observe(self, values: np.ndarray | pd.DataFrame, risk: np.ndarray, at: datetime,
                users: Sequence[str] | None = None, active: np.ndarray | None = None) -> None:
        """Append a scored micro-batch (``values`` columns in ``columns`` order, or a
        DataFrame holding them). Rows of inactive users are dropped if configured."""
        if not self.cfg.enabled:
            return
        if isinstance(values, pd.DataFrame):
            values = values.loc[:, list(self.columns)].to_numpy(np.float64)
        risk = np.asarray(risk, np.float64)
        if active is not None and self.cfg.active_only and not np.all(active):
            keep = np.asarray(active, bool)
            values, risk = values[keep], risk[keep]
            users = None if users is None else [u for u, k in zip(users, keep.tolist(), strict=True) if k]
        n = len(risk)
        if n == 0:
            return
        self.window.observe(values, risk, at, users)
        self.cadence.add(n, int(at.timestamp() // 86_400))

    def due(self) -> bool:
        return (self.cfg.enabled and self._pending is None and len(self.window) > 0
                and self.cadence.due(self.clock.monotonic()))

    def step(self) -> list[DriftOutcome]:
        """Collect a finished check (if any), then submit one if due. Never blocks."""
        out = self.poll()
        if self.due():
            self.submit()
        return out

    # -- checks --------------------------------------------------------------------------
    def warm(self) -> Future:
        """Start the worker (and import Evidently there) now rather than at the first
        check; let the requester warm up too (e.g. import its client) off the hot path."""
        warm = getattr(self.requester, "warm", None)
        if callable(warm):
            warm()
        return self._executor.submit(_warm)

    def submit(self, full_report: bool | None = None) -> Future:
        """Snapshot the window and check it in the background (the returned future)."""
        if self._pending is not None:
            return self._pending
        at = self.clock.now()
        if full_report is None:
            n = self.cfg.full_report_every
            full_report = bool(n) and self.checks % n == 0
        path = None
        if full_report and self.report_dir is not None:
            path = self.report_dir / f"{reports.report_name(at, self.model_version)}.html"
        log.info("drift check %d of model %s due (%s): %d rows", self.checks + 1, self.model_version,
                 self.cadence.reason or "asked", len(self.window))
        args = (self.window.snapshot(), self.reference, self.reference_risk, self.model_version, self.cfg, at, None, path)
        self.checks += 1
        self._pending_at = (at, self.model_version, len(self.window))
        self.cadence.checked(self.clock.monotonic())
        try:
            self._pending = self._executor.submit(self._check, *args)
        except BrokenExecutor as exc:  # the worker process died (e.g. OOM-killed): start another
            log.error("drift worker is gone (%s); starting a new one for the next check", exc)
            self._executor = make_executor(self.cfg.executor)
            failed: Future = Future()
            failed.set_exception(exc)
            self._pending = failed
        return self._pending

    def poll(self, wait: float | None = 0.0) -> list[DriftOutcome]:
        """Handle the running check if it finished (``wait`` seconds at most; None: until done)."""
        fut = self._pending
        if fut is None:
            return []
        if wait != 0.0:
            with contextlib.suppress(Exception):  # a failure or timeout is inspected below
                fut.result(timeout=wait)
        if not fut.done():
            return []
        self._pending = None
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - a failed check must not stop the stream
            log.error("drift check of model %s failed: %s: %s", self.model_version, type(exc).__name__, exc)
            at, version, rows = self._pending_at or (self.clock.now(), self.model_version, 0)
            reason = f"{type(exc).__name__}: {exc}".strip()
            self._record_status(at, version, "failed", reason, rows)
            failed = Failed(at, version, rows, reason)
            return [DriftOutcome(failed, Alert(Level.HEALTHY, (f"drift check failed: {reason}",)), None, False)]
        return [self._handle(result)]

    def _record_status(self, at: datetime, version: str, status: str, reason: str, rows: int) -> str | None:
        """A check that came due but gave no metrics is a store row too (with its reason)."""
        if self.store is None or not hasattr(self.store, "record_drift_status"):
            return None
        try:
            return self.store.record_drift_status(time=at, model_version=version, status=status, reason=reason,
                                                  rows=rows, source=self.source)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - scoring goes on; logged with its reason
            log.error("could not store the %s drift check: %s: %s", status, type(exc).__name__, exc)
            return None

    def _handle(self, result: DriftResult | Skipped) -> DriftOutcome:
        alert = assess_drift(result, self.cfg, self.importance)
        if isinstance(result, Skipped):
            if self.log_outcomes:
                log.warning("drift check skipped: %s", result.reason)
            rid = self._record_status(result.time, result.model_version, "skipped", result.reason, result.rows)
            return DriftOutcome(result, alert, rid, False)
        # The retrain decision first, so the stored run says whether this check asked for one
        # (the dashboard's retrain events are the runs with RETRAIN_REQUESTED among the reasons).
        if alert.level is Level.CRITICAL and self.log_outcomes:
            log.warning("critical drift of model %s: %s", result.model_version, "; ".join(alert.reasons))
        if self.cfg.retrain_policy == "immediate":
            requested, note = self._immediate(result, alert)
        else:
            requested, note = self._episode(result, alert)
        reasons = (*alert.reasons, *([note] if note else []))
        run_id = None
        if self.store is not None:
            try:
                run_id = self.store.record_drift_run(result, level=alert.level.value, reasons=reasons,
                                                     source=self.source)
            except Exception as exc:  # noqa: BLE001 - scoring goes on; the next check writes again
                log.error("could not store drift run: %s: %s", type(exc).__name__, exc)
        if self.report_dir is not None:
            name = reports.report_name(result.time, result.model_version)
            summary = result.summary() | {"level": alert.level.value, "reasons": list(reasons),
                                          "retrain_requested": requested, "importance": self.importance,
                                          "importance_weighted_share": weighted_share(result.features, self.importance)}
            reports.write_summary(self.report_dir, name, summary)
            reports.prune(self.report_dir, self.cfg.report_retention)
        if self._pending_request is not None:
            self._send(*self._pending_request, run_id=run_id)
            self._pending_request = None
        return DriftOutcome(result, alert, run_id, requested)

    # -- retrain policy ------------------------------------------------------------------
    def _payload(self, result: DriftResult, alert: Alert, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"model_version": result.model_version, "level": alert.level.value, "reasons": list(alert.reasons),
                "drifted_share": result.drifted_share,
                "prediction_drift": None if result.prediction is None else result.prediction.score,
                "window_start": result.window_start.isoformat(), "window_end": result.window_end.isoformat(),
                "report": result.report_path, "source": self.source, **dict(extra or {})}

    def _immediate(self, result: DriftResult, alert: Alert) -> tuple[bool, str | None]:
        """The old rule: every Critical check outside the cooldown asks at once."""
        if alert.level is not Level.CRITICAL:
            return False, None
        if isinstance(self.requester, LogOnly):  # nobody to tell: say so, start no cooldown
            self.requester.request(RetrainRequest(result.model_version, tuple(alert.reasons)))
            return False, f"{RETRAIN_SKIPPED}: no retrain requester configured (see DriftConfig.retrain_requester)"
        if self.cooldown is not None and self.cooldown.remaining() > timedelta(0):
            log.info("retrain not requested: cooldown %s left", self.cooldown.remaining())
            return False, f"{RETRAIN_SKIPPED}: cooldown {str(self.cooldown.remaining()).split('.')[0]} left"
        self._pending_request = (result, alert, None, tuple(alert.reasons), {})
        return True, f"{RETRAIN_REQUESTED} ({type(self.requester).__name__})"

    def _decision(self, at: datetime, version: str, decision: str, reason: str, episode: str | None = None,
                  due: datetime | None = None, run: str | None = None) -> None:
        log.info("retrain decision for model %s: %s: %s", version, decision, reason)
        if self.store is None or not hasattr(self.store, "record_retrain_decision"):
            return
        try:
            self.store.record_retrain_decision(time=at, model_version=version, decision=decision, reason=reason,
                                               episode_id=episode, due=due, run=run, source=self.source,
                                               now=self.clock.now())  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - scoring goes on; logged with its reason
            log.error("could not store the retrain decision %r: %s: %s", decision, type(exc).__name__, exc)

    def _evidence(self, now: datetime, onset: datetime, version: str) -> ep.Evidence:
        churners = int(self.store.cancels_since(onset))
        rows = self.store.realised_performance(model_version=version) if hasattr(
            self.store, "realised_performance") else pd.DataFrame()
        auc = base = day = None
        if not rows.empty:
            rows = rows.dropna(subset=["roc_auc"])
            before = rows[rows["day"] < onset]
            newest = rows.tail(self.cfg.retrain_realised_days)
            if not before.empty and not newest.empty and newest["day"].iloc[-1] > before["day"].iloc[-1]:
                auc, base = float(newest["roc_auc"].mean()), float(before["roc_auc"].mean())
                day = newest["day"].iloc[-1].to_pydatetime()
        return ep.Evidence(now, churners, auc, base, day)

    def _episode(self, result: DriftResult, alert: Alert) -> tuple[bool, str | None]:
        """Critical drift opens an episode; the retrain waits for labelled post-onset data
        (:mod:`pipeline.drift.episodes`). Every decision is stored with its reason."""
        version, now = str(result.model_version), result.window_end or result.time
        self._event_now = now
        store = self.store
        if store is None or not hasattr(store, "open_episode"):
            if alert.level is Level.CRITICAL:
                return False, f"{RETRAIN_SKIPPED}: no store to keep the drift episode in (retrain_policy='episode')"
            return False, None
        try:
            cur = store.current_episode(version)
            if cur is None:
                if alert.level is not Level.CRITICAL:
                    return False, None
                # the features behind the alert: those that moved strongly (>= feature_critical; a
                # no-drift week's day-of-week rhythm stays below it), else the top drifted ones
                ranked = [f for f in sorted(result.features, key=lambda f: -f.score) if f.drifted]
                strong = [f.feature for f in ranked if f.score >= self.cfg.feature_critical and "p_value" not in
                          f.method.lower().replace("-", "_")]  # fmt: skip
                drifted = (strong or [f.feature for f in ranked])[:3]
                runs = store.drift_runs(model_version=version)
                feats = store.drift_features(since=runs["time"].min()) if not runs.empty else pd.DataFrame(
                    columns=["run_id", "feature", "drifted", "score"])
                onset = ep.estimate_onset(result.window_start or now, drifted, runs, feats,
                                          min_score=self.cfg.feature_critical if strong else 0.0)
                eid = store.open_episode(model_version=version, onset=onset, opened_at=now,
                                         reason="; ".join(alert.reasons), now=self.clock.now())
                self._decision(now, version, ep.OPENED, f"Critical drift since {onset.date()} "
                               f"({', '.join(drifted) or 'risk'} drifted): {alert.reasons[0]}", eid)
                cur = store.current_episode(version)
            eid, onset = str(cur["episode_id"]), pd.Timestamp(cur["onset"]).to_pydatetime()
            if self._resolved(cur, version, alert, now):
                return False, None
            if cur["status"] == "retraining":
                sent = pd.Timestamp(cur["updated_at"]).to_pydatetime()
                wait = timedelta(hours=self.cfg.retrain_cooldown_hours)
                if self.clock.now() < sent + wait:
                    return False, f"{RETRAIN_SKIPPED}: the retrain sent at {sent:%Y-%m-%d %H:%M} is pending"
            evidence = self._evidence(now, onset, version)
            d = ep.decide(onset, evidence, self.cfg, self.horizon_days)
        except Exception as exc:  # noqa: BLE001 - scoring goes on; the next check decides again
            log.error("retrain policy failed for model %s: %s: %s", version, type(exc).__name__, exc)
            return False, f"{RETRAIN_SKIPPED}: retrain policy failed ({type(exc).__name__}: {exc})"
        if d.action == "defer":
            self._decision(now, version, ep.DEFERRED, d.reason, eid, d.due)
            return False, f"{RETRAIN_SKIPPED}: deferred" + (f" until {d.due.date()}" if d.due else "") + f" ({d.reason})"
        again = "" if cur["status"] == "open" else f"the retrain sent earlier did not replace v{version}; "
        if isinstance(self.requester, LogOnly):
            self.requester.request(RetrainRequest(version, (d.reason,)))
            self._decision(now, version, ep.NO_REQUESTER, f"{again}{d.reason}; no retrain requester configured "
                           "(see DriftConfig.retrain_requester): nobody was told", eid)
            return False, f"{RETRAIN_SKIPPED}: no retrain requester configured (see DriftConfig.retrain_requester)"
        if self.cooldown is not None and self.cooldown.remaining() > timedelta(0):
            left = str(self.cooldown.remaining()).split(".")[0]
            self._decision(now, version, ep.COOLDOWN, f"{again}{d.reason}; cooldown {left} left since the last "
                           "retrain run was created", eid)
            return False, f"{RETRAIN_SKIPPED}: cooldown {left} left"
        params = ep.train_parameters(onset, self.cfg, eid)
        self._decision(now, version, ep.REQUESTED, f"{again}{d.reason}" + (
            (f"; train on cutoffs from {params['start']}" if "start" in params else "; train on the usual window")
            + f", gate on post-onset rows (cutoffs from {params['gate_from']})" if "gate_from" in params else ""), eid)
        self._pending_request = (result, alert, eid, (d.reason, *alert.reasons),
                                 {"episode_id": eid, "onset": onset.isoformat(), "train_parameters": params})
        return True, f"{RETRAIN_REQUESTED} ({type(self.requester).__name__}): {d.reason}"

    def _send(self, result: DriftResult, alert: Alert, eid: str | None, because: tuple[str, ...],
              extra: Mapping[str, Any], run_id: str | None) -> None:
        version, now = str(result.model_version), result.window_end or result.time
        req = RetrainRequest(version, because, self._payload(result, alert, {**extra, "run_id": run_id}))
        try:
            run = self.requester.request(req)
        except Exception as exc:  # noqa: BLE001 - scoring goes on; the failure is recorded with its reason
            log.error("retrain wanted for model %s but the request failed: %s: %s", version, type(exc).__name__, exc)
            self._decision(now, version, ep.SEND_FAILED, f"{type(exc).__name__}: {exc}; no cooldown started, the "
                           "next check asks again", eid)  # fmt: skip
            return
        if self.cooldown is not None:  # delivered: a run exists (or the orchestrator took it on)
            self.cooldown.start(version, run)
        what = f"run {run} created" if run else f"delivered by {type(self.requester).__name__}"
        self._decision(now, version, ep.SENT, f"{what}; cooldown {self.cfg.retrain_cooldown_hours:g} h started", eid,
                       run=run)
        if eid is not None and self.store is not None:
            with contextlib.suppress(Exception):
                self.store.set_episode_status(eid, "retraining", what, now=self.clock.now())

    def _resolved(self, cur: Mapping[str, Any], version: str, alert: Alert, now: datetime) -> bool:
        """Close an open episode (no retrain sent) once ``episode_resolve_checks`` checks in
        a row were Healthy: the drift went away, nothing to retrain for. Any other level
        starts the count again; it is kept in memory, so a restarted monitor counts afresh
        (it closes later, never sooner). An episode with a retrain in flight waits for it."""
        need = self.cfg.episode_resolve_checks
        eid = str(cur["episode_id"])
        if alert.level is not Level.HEALTHY or not need or cur["status"] != "open":
            self._healthy_checks.pop(eid, None)
            return False
        n = self._healthy_checks[eid] = self._healthy_checks.get(eid, 0) + 1
        if n < need:
            return False
        reason = f"drift subsided: {n} Healthy checks in a row (episode_resolve_checks={need}); no retrain needed"
        self.store.set_episode_status(eid, "closed", reason, now=self.clock.now(), closed_at=now)  # type: ignore[union-attr]
        self._decision(now, version, ep.RESOLVED, reason, eid)
        self._healthy_checks.pop(eid, None)
        log.info("drift episode %s of model %s resolved: %s", eid, version, reason)
        return True

    def _close_episode(self, old: str, new: str) -> None:
        """A new champion ends the old one's episode (the gate promoted a retrain, or a person did)."""
        if self.store is None or not hasattr(self.store, "current_episode"):
            return
        try:
            cur = self.store.current_episode(old)
            if cur is None:
                return
            reason = f"v{new} became the champion (gate promoted it): episode of v{old} closed"
            at = self._event_now or self.clock.now()  # decisions are in event time
            self.store.set_episode_status(str(cur["episode_id"]), "closed", reason, now=self.clock.now(),
                                          closed_at=at)
            self._decision(at, old, ep.CLOSED, reason, str(cur["episode_id"]))
        except Exception as exc:  # noqa: BLE001 - scoring goes on
            log.error("could not close the drift episode of v%s: %s: %s", old, type(exc).__name__, exc)

    @property
    def running(self) -> bool:
        """A check was submitted and its outcome not handled yet."""
        return self._pending is not None

    @property
    def idle(self) -> bool:
        """No check is computing now (none submitted, or it finished and waits to be collected)."""
        return self._pending is None or self._pending.done()

    def close(self, wait: bool | float = False, give_up: Callable[[], bool] = lambda: False,
              why: str = STOPPED) -> list[DriftOutcome]:
        """Stop the executor, handling a check that already finished. ``wait``: True
        finishes (and handles) the running check first; a number of seconds waits for it
        that long at most, or until ``give_up()``; False does not wait.

        A check still running after that is ended (its process holds no state) and
        stored as ``skipped`` with the reason (``why``, and the wait): it came due and gave no verdict, and a
        restart does not redo it (its window is behind the checkpoint), so the Drift page
        must say so rather than show nothing."""
        deadline = time.monotonic() + (0.0 if wait is True else float(wait or 0.0))

        def finish() -> list[DriftOutcome]:
            if wait is True:
                return self.poll(wait=None)
            got = self.poll()
            while self._pending is not None and not give_up() and (left := deadline - time.monotonic()) > 0:
                got += self.poll(wait=min(0.25, left))
            return got

        out = finish()
        # A run that ends on its own may have outrun its checks: event days that passed while
        # one ran were never looked at (a replay catching up faster than a check takes). The
        # newest rows get one last check, within the same wait.
        if (wait and self._pending is None and self.due() and not give_up()
                and (wait is True or deadline - time.monotonic() > 0)):
            log.info("drift: one last check of the rows scored since the previous one, before stopping")
            self.submit()
            out += finish()
        if self._pending is not None:
            out.append(self._unfinished(wait, why))
        procs = list((getattr(self._executor, "_processes", None) or {}).values())
        self._executor.shutdown(wait=wait is True, cancel_futures=True)
        if wait is not True:  # do not wait for the child: end its process (it holds no state)
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(Exception):
                    proc.join(timeout=5)
                    if proc.is_alive():  # ignored SIGTERM (e.g. stuck in native code): it must not outlive us
                        proc.kill()
                        proc.join(timeout=5)
        return out

    def _unfinished(self, waited: bool | float, why: str) -> DriftOutcome:
        """The running check, ended before it finished: stored as skipped, with why."""
        at, version, rows = self._pending_at or (self.clock.now(), self.model_version, 0)
        self._pending = None
        after = f" after waiting {float(waited):g} s for it" if waited else ""
        reason = f"{why} while this check ran{after}: ended without a verdict; its window is not checked again"
        if why == STOPPED:
            reason += ("; a stream run that ends on its own (--until-caught-up, a time limit) waits for the check "
                       "in flight up to its drift_finish_s (60 s by default) instead")  # fmt: skip
        log.warning("drift check of model %s (%d rows) ended unfinished: %s", version, rows, why)
        rid = self._record_status(at, version, "skipped", reason, rows)
        return DriftOutcome(Skipped(at, version, rows, reason), Alert(Level.HEALTHY, (f"drift check not finished: "
                                                                                     f"{reason}",)), rid, False)

    def __enter__(self) -> DriftMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
