"""Drift monitoring inside the scoring stream: one monitor per consumer group, off the hot path.

Where it runs: only the worker that owns partition ``leader_partition`` (default 0), the
*drift leader*, runs a :class:`~pipeline.drift.monitor.DriftMonitor`, so a group of N
workers has one Evidently child process, not N. Partitions hash users uniformly
(murmur2), so the leader's users are a random sample of all users. Leadership follows
the partition: when autoscaling hands partition 0 over, the old owner closes its monitor
and the new owner starts one at its next batch; a restarted worker starts a fresh one.
The retrain cooldown is a file under ``<data_dir>/drift`` that all of them share.

Which model: the version the worker is scoring with. Its reference sample (the training
features logged with the model) is exported next to the model by the supervisor
(``reference.parquet``, see :func:`write_reference`); when the champion alias moves and
the worker switches, the monitor switches to the new version's reference and empties
its window. A version exported without a reference is scored but not monitored (logged
once).

What it observes (``DriftConfig.observe``):

* ``"day_snapshot"`` (default): when a partition's event time passes a UTC midnight,
  the vectors of *every active user* of that partition at that midnight, scored by the
  model. The engine splits the micro-batch at the first record past midnight and calls
  back in between (:meth:`FeatureEngine.set_cutoff`): the training replay's rule, so the
  vectors equal the training snapshot at that cutoff. That is what the reference is:
  active users' vectors at midnight cutoffs. Once every owned
  partition has crossed into the day, the window is replaced by that day's snapshot
  and a check is due. Comparing the scored users instead (users as of their latest event,
  mid-day: always "just active", never dormant) raises false alarms on a simulation with
  no drift at all (docs/drift.md has the measurement).
* ``"scored"``: every scored vector (the touched users of each micro-batch).

No checks before ``warmup_days`` of event time have passed since the partition's first
record: the 7- and 30-day window features of a young log are not comparable with a
reference taken after training's own warm-up.

Cost on the hot path: a copy into the ring buffer per batch (``scored``) or one state
read + one predict of the partition's active users per checked day (``day_snapshot``: a
day that begins while a check is still running is not read; replaying history, days pass
faster than checks); checks run in the monitor's child process.

Catching up: a stream that replayed history faster than checks run has skipped the
midnights of its newest days; once its log stops growing (a bounded replay, an import, a
producer that ended) no midnight passes again, and its last check would stay the one of
an old day. So when the worker is caught up, its partitions have been quiet for
``QUIET_S`` seconds, the monitor is idle and a midnight was skipped since the last
window, :meth:`DriftHook.tick` reads every owned partition at the first UTC midnight at
or after the newest event (one cutoff for all): with no event after it, that is exactly
the midnight snapshot training would take there. (Not at the newest event itself:
features count whole calendar days -- ``watch_today`` is the day so far -- so a mid-day
read is a shifted population, a false alarm.) A run that ends caught up (``--until-
caught-up``, the catch-up deployment) does the same as it stops, without the quiet wait,
and its last check looks at that window. If the log had only paused and events of that
day still come, the window is provisional: when the midnight itself passes, its own
window is read and checked again. A live log keeps growing: its midnights come and are
read as usual.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.drift.config import STOPPED, DriftConfig
from pipeline.features.registry import FEATURE_NAMES
from pipeline.features.timebase import DAY_US, NONE_US, to_us

REFERENCE_FILE = "reference.parquet"
QUIET_S = 5.0  # caught up and no record for this long: the log has stopped growing (see "Catching up")
log = logging.getLogger(__name__)


def write_reference(export_dir: Path, reference: pd.DataFrame | None) -> Path | None:
    """Save a model version's reference sample beside its export (None: nothing to save)."""
    if reference is None or len(reference) == 0:
        return None
    path = Path(export_dir) / REFERENCE_FILE
    tmp = path.with_suffix(".parquet.tmp")
    reference.reset_index(drop=True).to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_reference(export_dir: Path) -> pd.DataFrame | None:
    path = Path(export_dir) / REFERENCE_FILE
    return pd.read_parquet(path) if path.exists() else None


def reference_risk(model: Any, reference: pd.DataFrame) -> np.ndarray:
    """The model's predictions on its reference sample (the prediction-drift reference).
    Columns the reference lacks are zero: the model does not read them (it was trained
    on the reference's columns)."""
    columns = getattr(model, "engine_columns", FEATURE_NAMES)  # the topic's engine columns
    values = np.zeros((len(reference), len(columns)), np.float64)
    for j, name in enumerate(columns):
        if name in reference.columns:
            values[:, j] = reference[name].to_numpy(np.float64)
    return np.asarray(model.predict(values), np.float64)


def model_importance(model: Any, reference: pd.DataFrame) -> dict[str, float]:
    """The champion's feature importance on its reference sample: the weights of its drift
    alerts (:mod:`pipeline.drift.importance`); {} (every feature alike) if it cannot be had."""
    from pipeline.drift.importance import scoring_model_importance

    try:  # the model's engine columns (a topic's feature spec may have its own), else the built-in set
        return scoring_model_importance(model, reference, getattr(model, "engine_columns", FEATURE_NAMES))
    except Exception as exc:  # noqa: BLE001 - drift checks go on, unweighted; the reason is logged
        log.warning("no feature importance for model %s (%s: %s): drift alerts weigh every feature alike",
                    getattr(model, "version", "?"), type(exc).__name__, exc)
        return {}


_SIGNUP_HEAD = b'{"type":"signup",'  # pipeline.events.encode writes the tag first


def _first_activity_us(log_: Any, partition: int, head_limit: int = 1_000_000) -> int | None:
    """Event time of the partition's first non-signup record (a simulated or imported
    history starts with back-dated signups), the rule of :func:`pipeline.labels.activity_range`."""
    from pipeline.features.columns import SIGNUP, decode_columns

    lo = off = log_.start_offset(partition)
    while off < min(log_.end_offset(partition), lo + head_limit):
        values, nxt = log_.fetch_values(partition, off, 5_000)
        if not values:
            break
        # A signup as the contract's encoder writes it starts with its tag: such records
        # are skipped by a bytes test, not decoded (a simulated partition opens with tens
        # of thousands of them: decoding them was ~20 ms, inside the first batch to reach
        # a midnight). Every other record is decoded and judged as before.
        values = [v for v in values if not v.startswith(_SIGNUP_HEAD)]
        off = nxt
        if not values:
            continue
        cols = decode_columns(values).columns
        act = np.flatnonzero(cols.code != SIGNUP)
        if len(act):
            return int(cols.ts[act[0]])
    return None


class DriftHook:
    """Called by :class:`pipeline.stream.worker.Worker`: ``after_batch`` per scored batch,
    ``tick`` once per loop pass, ``close`` at shutdown."""

    def __init__(self, worker_id: str, cfg: DriftConfig, store: Any, data_dir: Path, clock: Any,
                 logger: logging.Logger | None = None, **monitor_kwargs: Any) -> None:  # fmt: skip
        self.worker_id = worker_id
        self.cfg = cfg
        self.store = store
        self.report_dir = Path(data_dir) / "drift"
        self.clock = clock
        self.logger = logger or log
        self.monitor_kwargs = monitor_kwargs  # tests: requester, executor, check
        self.monitor: Any = None
        self.version: str | None = None  # the version the monitor checks against
        self.unmonitored: str | None = None  # a version without a usable reference
        self.outcomes: list[Any] = []  # every finished check this hook handled (tests, summary)
        self._first: dict[int, int | None] = {}  # partition -> first event time (warm-up)
        self._pending: dict[int, dict[int, tuple[np.ndarray, np.ndarray, list[str], datetime]]] = {}
        self._armed: dict[int, Any] = {}  # partition -> the engine armed with a midnight callback
        self._decided: dict[int, bool] = {}  # event day -> read it (the monitor was idle when it began)
        self._skipped: int | None = None  # the newest event day not read: the monitor was busy
        self._window_day: int | None = None  # the event day of the newest window handed to the monitor
        self._provisional: int | None = None  # a day read ahead of its midnight by a catch-up (see _flush)
        self._worker: Any = None
        self._warmed = False

    # -- leadership and model ---------------------------------------------------------------
    def _leads(self, worker: Any) -> bool:
        return self.cfg.leader_partition % worker.log.num_partitions in worker.parts

    def _ensure(self, worker: Any) -> bool:
        """A monitor for the worker's current model, if this worker leads; False if none."""
        if not self._leads(worker) or worker.model is None:
            if self.monitor is not None:
                self.logger.info("worker %s: no longer owns partition %d; drift monitoring moves with it",
                                 self.worker_id, self.cfg.leader_partition)  # fmt: skip
                self.close(why=f"this worker handed partition {self.cfg.leader_partition} (drift leadership) over")
            return False
        version = worker.model.version
        if version == self.version:
            return True
        if version == self.unmonitored:
            return False
        reference = read_reference(Path(worker.model.ref.path))
        if reference is None:
            self.unmonitored = version
            self.logger.warning("worker %s: champion v%s was exported without a reference sample (%s): scoring "
                                "it without drift checks", self.worker_id, version, REFERENCE_FILE)  # fmt: skip
            self._record_unmonitored(version)
            if self.monitor is not None:
                self.close(why=f"the champion changed to v{version}")
            return False
        risk = reference_risk(worker.model, reference)
        importance = model_importance(worker.model, reference)
        if self.monitor is None:
            from pipeline.drift.monitor import DriftMonitor

            self.monitor = DriftMonitor(reference, version, reference_risk=risk, config=self.cfg, store=self.store,
                                        report_dir=self.report_dir, clock=self.clock, source=self.worker_id,
                                        importance=importance, horizon_days=worker.model.ref.horizon_days,
                                        # the engine's columns for this topic's feature spec
                                        **{"columns": getattr(worker.model, "engine_columns", FEATURE_NAMES)}
                                        | self.monitor_kwargs)  # fmt: skip
            self.monitor.log_outcomes = False  # _collect logs each outcome, with the worker's name
            self.logger.info("worker %s: drift leader (owns partition %d); monitoring v%s against %d reference rows",
                             self.worker_id, self.cfg.leader_partition, version, len(reference))  # fmt: skip
        else:
            self._collect(self.monitor.poll())
            self.monitor.set_model(reference, version, risk, importance, worker.model.ref.horizon_days)
            self.logger.info("worker %s: drift checks now use v%s's reference (%d rows)", self.worker_id, version,
                             len(reference))  # fmt: skip
        self.version = version
        self._pending.clear()
        return True

    def _record_unmonitored(self, version: str) -> None:
        """A version that cannot be monitored is one "skipped" drift run with the reason
        (the Drift page shows why no checks come), not only a log line."""
        if self.store is None or not hasattr(self.store, "record_drift_status"):
            return
        try:
            self.store.record_drift_status(
                time=self.clock.now(), model_version=version, status="skipped", source=self.worker_id,
                reason=f"champion v{version} was exported without a reference sample ({REFERENCE_FILE}): no drift "
                       "checks for it; retrain with `churn train` (it logs a reference with the model)")  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - scoring goes on
            self.logger.error("could not store the skipped drift checks of v%s: %s", version, exc)

    # -- the worker's calls -------------------------------------------------------------------
    def after_batch(self, worker: Any, part: Any, watermark: datetime | None, frame: Any = None,
                    risk: np.ndarray | None = None) -> None:  # fmt: skip
        """After a batch of ``part`` was scored (``frame``/``risk``: the scored users)."""
        if watermark is None or not self._ensure(worker):
            return
        mon = self.monitor
        if self.cfg.observe == "scored":
            if frame is not None and risk is not None and self._warm_enough(worker, part.partition, watermark):
                self._warm()
                mon.observe(frame.values, risk, watermark, users=frame.users, active=frame.active)
        else:
            self._day_boundary(worker, part, watermark)
        self._collect(mon.step())

    def tick(self, worker: Any) -> None:
        """Once per loop pass (also when idle): hand over leadership, read the newest
        window if midnights were skipped and the worker has caught up, collect finished
        checks and submit a due one."""
        if self.monitor is not None and self._ensure(worker):
            self._catch_up(worker)
            self._collect(self.monitor.step())

    def close(self, wait: bool | float = False, give_up: Any = lambda: False, why: str = STOPPED) -> None:
        """Stop monitoring (see :meth:`pipeline.drift.monitor.DriftMonitor.close` for
        ``wait``/``give_up``: a check still running after the wait is stored as skipped)."""
        if self.monitor is not None:
            if wait and self._worker is not None and not give_up():
                # a run ending caught up (--until-caught-up, the catch-up deployment) that
                # outran its checks: its newest midnight is read now, and the last check
                # (DriftMonitor.close) looks at it
                try:
                    self._catch_up(self._worker, final=True)
                except Exception as exc:  # noqa: BLE001 - the stop goes on; the reason is logged
                    self.logger.error("worker %s: could not read the newest drift window at stop: %s: %s",
                                      self.worker_id, type(exc).__name__, exc)  # fmt: skip
            if self.monitor.running and wait and wait is not True:  # a bounded wait (True: until done, silently)
                self.logger.info("worker %s: finishing the drift check in flight (up to %g s; a stop signal ends "
                                 "it unfinished)", self.worker_id, float(wait))  # fmt: skip
            self._collect(self.monitor.close(wait=wait, give_up=give_up, why=why))
        self.monitor = None
        self.version = None
        self._pending.clear()
        self._skipped = self._window_day = self._provisional = None
        for p, engine in self._armed.items():
            engine.set_cutoff(p, None)
        self._armed.clear()
        self._warmed = False

    # -- internals ------------------------------------------------------------------------------
    def _warm_enough(self, worker: Any, p: int, watermark: datetime) -> bool:
        if p not in self._first:
            self._first[p] = _first_activity_us(worker.log, p)
        first = self._first[p]
        return first is not None and to_us(watermark) - first >= self.cfg.warmup_days * DAY_US

    def _warm(self) -> None:
        if not self._warmed:  # Evidently's import in the child process, Prefect's events here
            self._warmed = True
            self.monitor.warm()

    def _day_boundary(self, worker: Any, part: Any, watermark: datetime) -> None:
        """Arm the engine to call back at the partition's next UTC midnight (it splits the
        batch there, like the training replay splits at cutoffs)."""
        p, engine = part.partition, part.engine
        if self._armed.get(p) is engine:
            return
        self._armed[p] = engine
        self._worker = worker
        midnight = (to_us(watermark) // DAY_US + 1) * DAY_US
        engine.set_cutoff(p, midnight, self._at_midnight(p, engine))

    def _at_midnight(self, p: int, engine: Any) -> Any:
        def at_midnight(t_us: int, state: Any) -> None:
            if self.monitor is None or self._armed.get(p) is not engine:
                return  # closed or handed over
            del self._armed[p]  # re-armed after the batch, at the midnight after its watermark
            self._snapshot(p, t_us, state)

        return at_midnight

    def _snapshot(self, p: int, t_us: int, state: Any) -> None:
        worker = self._worker
        at = datetime.fromtimestamp(t_us / 1e6, tz=UTC)
        if worker.model is None or worker.model.version != self.version or not self._warm_enough(worker, p, at):
            return
        day = t_us // DAY_US
        if day not in self._pending:
            # Replaying history, days pass faster than checks run: read a day only if the
            # monitor is idle now (that day's check can start as soon as it is complete);
            # every partition then follows the first one's decision for that day.
            if day not in self._decided:
                self._decided = {d: v for d, v in self._decided.items() if d >= day - 2}
                self._decided[day] = self.monitor.idle
            if not self._decided[day]:
                self._skipped = day if self._skipped is None else max(self._skipped, day)
                return
        self._pending.setdefault(day, {})[p] = self._read(worker, p, t_us, state, seed=day * 1_000 + p)
        self._warm()
        owned = set(worker.parts)
        for d in sorted(self._pending):
            if owned <= set(self._pending[d]) or d < day:  # complete, or stale (a partition without events)
                self._flush(d, self._pending.pop(d))

    def _read(self, worker: Any, p: int, t_us: int, state: Any,
              seed: int) -> tuple[np.ndarray, np.ndarray, list[str], datetime]:  # fmt: skip
        """Partition ``p``'s active users' vectors at ``t_us`` and the model's risks."""
        idx = state.active_slots()  # every active user of the partition, as of t_us
        # The window holds at most window_rows users: read and score (the prediction-drift
        # input) only a uniform sample of that size, split over the owned partitions, not
        # all of them -- on a big partition that is most of the snapshot's cost.
        cap = -(-self.cfg.window_rows // max(1, len(worker.parts)))
        if len(idx) > cap:
            idx = np.sort(np.random.default_rng(seed).choice(idx, cap, replace=False))
        ids = state.user_ids
        snap = state.read(t_us, [ids[i] for i in idx.tolist()], slots=idx)  # the same rows as a full read's
        values, users = snap.values, snap.users
        risk = worker.model.predict(values) if len(values) else np.empty(0)
        return values, np.asarray(risk, np.float64), users, datetime.fromtimestamp(t_us / 1e6, tz=UTC)

    def _catch_up(self, worker: Any, final: bool = False) -> None:
        """Caught up after skipping midnights: the window is every owned partition's active
        users at the first midnight at or after the newest event (module docstring,
        "Catching up"). ``final``: the run is ending caught up (the log is drained), so no
        quiet period is waited for and the check in flight need not have finished (its
        window was copied when it was submitted)."""
        skipped = self._skipped
        if skipped is None:
            return
        if self._window_day is not None and self._window_day >= skipped:
            self._skipped = None  # a later midnight was read after all
            return
        if worker.model is None or worker.model.version != self.version or not worker.parts:
            return
        if not final:
            if not self.monitor.idle:
                return  # the next window waits for the check in flight, as at a midnight
            now = worker.clock.monotonic()
            if any(now - part.last_activity < QUIET_S for part in worker.parts.values()):
                return
        if not worker.caught_up():
            return
        states = {p: part.engine.state(p) for p, part in worker.parts.items()}
        marks = [st.watermark_us for st in states.values() if st.watermark_us != NONE_US]
        if not marks:
            return
        # one cutoff for every partition: the first midnight at or after the newest event
        # (an event at 00:00 belongs to that midnight's snapshot, as in training's replay)
        midnight = -(-max(marks) // DAY_US) * DAY_US
        at = datetime.fromtimestamp(midnight / 1e6, tz=UTC)
        warm = [p for p in states if self._warm_enough(worker, p, at)]
        if not warm:
            return
        self._skipped = None
        parts = {p: self._read(worker, p, midnight, states[p], seed=midnight // DAY_US * 1_000 + p) for p in warm}
        self._pending.clear()  # superseded: newer than any incomplete midnight
        self._warm()
        day = midnight // DAY_US
        # Read ahead of its midnight: if events of that day still come (the log had only
        # paused), the midnight's own window is checked again when it passes (_flush)
        self._provisional = None if final else day
        self._flush(day, parts, caught_up=True)

    def _flush(self, day: int, parts: dict[int, tuple[np.ndarray, np.ndarray, list[str], datetime]],
               caught_up: bool = False) -> None:  # fmt: skip
        mon = self.monitor
        mon.window.clear()  # the window is one day's population, like one reference cutoff
        rows = 0
        for values, risk, users, at in parts.values():
            if len(values):
                mon.observe(values, risk, at, users=users)
                rows += len(values)
        self._window_day = day if self._window_day is None else max(self._window_day, day)
        when = datetime.fromtimestamp(day * DAY_US / 1e6, tz=UTC).date().isoformat()
        if caught_up:
            when += " (caught up with a log that stopped growing; the midnights before passed during a check)"
        elif self._provisional is not None and day >= self._provisional:
            if day == self._provisional:  # the log had only paused: this midnight's own window is checked too
                mon.cadence.reopen("the day's own midnight passed after a catch-up read it ahead")
                when += " (read ahead of its midnight by a catch-up before: checked again)"
            self._provisional = None
        self.logger.info("worker %s: drift window = %d active users at %s (partitions %s)", self.worker_id, rows,
                         when, sorted(parts))  # fmt: skip

    def _collect(self, outcomes: list[Any]) -> None:
        for o in outcomes:
            self.outcomes.append(o)
            lvl = o.alert.level.value
            ran = hasattr(o.result, "features")  # skipped and failed checks are no "Healthy" verdict
            lvl = lvl if ran else type(o.result).__name__.lower()
            self.logger.log(logging.INFO if lvl == "Healthy" else logging.WARNING, "worker %s: drift %s for v%s: %s%s",
                            self.worker_id, lvl, getattr(o.result, "model_version", "?"), "; ".join(o.alert.reasons),
                            " - retrain requested" if o.retrain_requested else "")  # fmt: skip
