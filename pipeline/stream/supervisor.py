"""The supervisor: runs the consumer group's worker processes and is the autoscaler's hands.

* Waits for a champion (polling the registry, saying clearly why it waits), exports it
  for the workers and follows the alias (polled in a thread, off the supervision loop):
  a new version is exported and the pointer moved, so workers switch between batches
  (a version whose feature set the engine does not compute is refused, naming both
  versions).
* Starts ``workers`` processes (``python -m pipeline.stream.worker``) and assigns the
  partitions (sticky, exclusive, recorded in the store). A worker that dies is restarted
  with the same id and partitions; it resumes from its checkpoints. One that stops
  heartbeating is killed and restarted.
* Implements :class:`pipeline.autoscale.ScaleController`: ``scale_to(n)`` starts or stops
  processes and rebalances. Partitions move by handover: the old owner checkpoints and
  drops its lease, the new one restores that checkpoint (no event lost or scored twice).
  Every ``autoscale_interval_s`` it feeds per-partition lag (log end minus committed) to
  the policy and stores the decision; the alert level is logged when it changes and
  can be derived for the dashboard (:mod:`pipeline.stream.health`).
* Stops on request (``should_stop``, Ctrl-C, SIGTERM, a cancelled flow run), after
  ``max_seconds`` or once caught up: every worker drains (checkpoints) and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.autoscale import AutoscalePolicy, PolicyConfig, autoscale_step, sticky_assign
from pipeline.clock import Clock, SystemClock
from pipeline.config import PROJECT_ROOT
from pipeline.errors import ModelMismatchError, ModelUnreadableError, StreamError
from pipeline.log.base import PartitionLog
from pipeline.pidlock import PidLock
from pipeline.stream.champion import ChampionInfo, ChampionSource
from pipeline.stream.checkpoint import CheckpointStore
from pipeline.stream.config import CAUGHT_UP_CHAMPION_WAIT_S, StreamConfig, StreamPaths
from pipeline.stream.health import alert_from_log
from pipeline.stream.model import META, ModelRef, publish, read_pointer
from pipeline.stream.worker import EXIT_FATAL, STORE_URL_ENV, WorkerSpec

# One core per worker (the group scales by processes: OpenMP threads would spin-wait on a
# shared core), and glibc malloc tuned for a process that frees big snapshot buffers:
# two arenas and a fixed mmap threshold, so freed buffers go back to the OS. Measured on
# the benchmark (100,000 users): the worker grew by ~90 MB instead of ~260 MB.
WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": str(1 << 20),
}
POLL_END_WAIT_S = 5.0  # at exit, for a registry poll in flight (it may be writing an export)
_EXPORTING = threading.Lock()  # one export at a time in a process (they may share a models dir)
MAX_RESTARTS = 5  # within RESTART_WINDOW_S, then the supervisor gives up with the error
RESTART_WINDOW_S = 120.0


@dataclass
class _Proc:
    worker_id: str
    popen: subprocess.Popen[bytes]
    retiring: bool = False
    stop_sent: float | None = None
    restarts: list[float] = field(default_factory=list)


@dataclass
class _Fetched:
    """What one registry poll found: the alias's version (None: none, or no answer) and,
    when the workers needed another export, that export or why it failed."""

    info: ChampionInfo | None
    ref: ModelRef | None = None
    error: BaseException | None = None
    problem: str | None = None  # why there is no ``info``


@dataclass
class _Poll:
    """One registry poll in a daemon thread (one that never answers must not keep the
    process from exiting: its result is simply never applied)."""

    done: threading.Event = field(default_factory=threading.Event)
    result: _Fetched = field(default_factory=lambda: _Fetched(None))

    @classmethod
    def start(cls, fetch: Callable[[], _Fetched]) -> _Poll:
        poll = cls()

        def run() -> None:
            try:
                poll.result = fetch()
            except Exception as exc:  # noqa: BLE001 - a bug: say it where the loop says poll problems
                poll.result = _Fetched(None, problem=f"the poll failed ({type(exc).__name__}: {exc})")
            finally:
                poll.done.set()

        threading.Thread(target=run, name="champion-poll", daemon=True).start()
        return poll


class Supervisor:
    def __init__(
        self,
        data_dir: Path,
        topic: str,
        store_url: str,
        champion: ChampionSource,
        config: StreamConfig | None = None,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        worker_env: dict[str, str] | None = None,
        log_config: dict[str, Any] | None = None,
        drift: Any = None,
    ) -> None:
        """``log_config`` (:func:`pipeline.log.kafka_config.log_config` of the Settings) selects
        the log backend and its options, for this process and the workers; ``None``:
        the file backend under ``data_dir``."""
        from pipeline.features.spec import spec_for
        from pipeline.log.deadletter import dead_letter_log
        from pipeline.log.file import lost_metadata
        from pipeline.log.kafka_config import open_log_config
        from pipeline.store import Store

        self.data_dir = Path(data_dir).resolve()
        self.topic = topic
        self.store_url = store_url
        self.champion = champion
        self.clock = clock or SystemClock()
        self.logger = logger or logging.getLogger("pipeline.stream")
        self.log_config = dict(log_config or {"log_backend": "file"})
        # a DriftConfig (pipeline.drift): the worker owning its leader partition runs the checks
        self.drift = None if drift is None else (drift if isinstance(drift, dict) else asdict(drift))
        topic_dir = self.data_dir / "log" / topic
        if self.log_config.get("log_backend", "file") == "file" and not (topic_dir / "topic.json").exists():
            if (problem := lost_metadata(topic_dir)) is not None:
                raise StreamError(problem)
            raise StreamError(f"no topic {topic!r} under {self.data_dir / 'log'}: run `churn simulate` "
                              "or `churn import` (or start `churn produce`) first, or check --data-dir/--topic")  # fmt: skip
        # Kafka: a missing topic is a LogError naming the cluster and `churn topics --create`
        self.log: PartitionLog = open_log_config(self.data_dir, topic, self.log_config)
        self.feature_spec = spec_for(self.data_dir, topic, self.log)  # the champion must be trained on it
        if self.log_config.get("log_backend", "file") != "file":
            dead_letter_log(self.log).close()  # create <topic>.dlq once, not racing in N workers
        cfg = config or StreamConfig()
        self.cfg = cfg.clamp_workers(self.log.num_partitions)
        if self.cfg != cfg:
            self.logger.info(
                "stream: %d partitions, so at most %d workers",
                self.log.num_partitions,
                self.cfg.max_workers,
            )
        self.paths = StreamPaths(self.data_dir, self.cfg.group)
        self.store = Store(store_url, clock=self.clock)
        self.policy = AutoscalePolicy(PolicyConfig(
            lag_threshold=self.cfg.lag_threshold, min_consumers=self.cfg.min_workers,
            max_consumers=self.cfg.max_workers, scale_down_stabilization_s=self.cfg.scale_down_stabilization_s,
            cooldown_s=self.cfg.cooldown_s,
        ))  # fmt: skip
        self.worker_env = worker_env or {}
        self.procs: dict[str, _Proc] = {}
        self.assignment: dict[str, tuple[int, ...]] = {}
        self.generation = 0
        self.model: ModelRef | None = None
        self.refused: str | None = None
        self.decisions: list[dict[str, Any]] = []
        self.restarts = 0
        self._lowest: dict[int, int] = {}  # per partition: the lowest offset committed in this run
        self._checkpoints = CheckpointStore(self.paths.checkpoints, self.topic, self.cfg.group)
        self._started_at: datetime | None = None  # clock time the run began (commit history since)
        self._poll: _Poll | None = None  # the registry poll in flight (run's loop)
        self._poll_problem: str | None = None  # why the last poll found no champion (said once)
        self.alert_level: str | None = None
        self._lock: PidLock | None = None
        self._stop = False

    # -- lifecycle -----------------------------------------------------------------------
    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        max_seconds: float | None = None,
        until_caught_up: bool = False,
    ) -> dict[str, Any]:
        """Supervise until stopped; returns a summary. Always drains the workers on exit."""
        t0 = time.monotonic()
        self._started_at = self.clock.now()
        deadline = None if max_seconds is None else t0 + max_seconds

        def done() -> bool:
            return (
                self._stop
                or should_stop()
                or (deadline is not None and time.monotonic() >= deadline)
            )

        self._take_lock()
        start_offsets = self._start_offsets()
        finish = False  # caught up or out of time: the workers may end the work in flight (drain)
        try:
            limit = self.cfg.champion_wait_s
            if limit is None and until_caught_up:  # a run meant to end must not wait forever
                limit = CAUGHT_UP_CHAMPION_WAIT_S
            if not self.wait_for_champion(done, limit):
                return self.summary(t0, start_offsets, "stopped before a champion was available")
            self.scale_to(self.cfg.workers, "initial size")
            next_scale = time.monotonic() + self.cfg.autoscale_interval_s
            next_model = time.monotonic() + self.cfg.model_poll_s
            next_health = time.monotonic() + 5.0
            # The registry poll (and a new version's download) runs off this loop: a server
            # that accepts and never answers held it ~35 s per poll (no reaping, heartbeats
            # or autoscaling meanwhile). One poll at a time; its result is applied here.
            while not done():
                self.reap()
                now = time.monotonic()
                if self._poll is not None and self._poll.done.is_set():
                    self._apply(self._poll.result)
                    self._poll = None
                if self._poll is None and now >= next_model:
                    next_model = now + self.cfg.model_poll_s
                    self._poll = _Poll.start(self._fetch)
                if now >= next_health:
                    next_health = now + 5.0
                    self.check_heartbeats()
                if self.cfg.autoscale and now >= next_scale:
                    next_scale = now + self.cfg.autoscale_interval_s
                    self.autoscale()
                if until_caught_up and self.caught_up():
                    self.logger.info("stream: caught up with the log end on every partition")
                    finish = True
                    return self.summary(t0, start_offsets, "caught up")
                time.sleep(0.2)
            finish = not (self._stop or should_stop())  # out of time (max_seconds): a run that ends on its own
            return self.summary(t0, start_offsets, "stopped")
        finally:
            self.drain(finish=finish)
            self._end_poll()
            self._release_lock()

    def _end_poll(self) -> None:
        """Give a poll still in flight (perhaps mid-export) a moment to end, so the process
        does not exit in the middle of writing an export; its result is not applied."""
        if self._poll is not None:
            self._poll.done.wait(POLL_END_WAIT_S)
            self._poll = None

    def stop(self) -> None:
        self._stop = True

    def _take_lock(self) -> None:
        lock = PidLock(self.paths.supervisor_lock)
        if not lock.try_acquire():
            raise StreamError(
                f"consumer group {self.cfg.group!r} is already supervised (pid {lock.holder()}, lock "
                f"{self.paths.supervisor_lock}); stop that stream first or use another --group"
            )
        self._lock = lock

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- champion ------------------------------------------------------------------------
    def wait_for_champion(self, done: Callable[[], bool], limit_s: float | None = None) -> bool:
        """Poll until the registry has a champion (True) or we are told to stop (False);
        after ``limit_s`` seconds without one, a StreamError that says why there is none."""
        said = -1e9
        start = time.monotonic()
        while not done():
            info = self.champion.current()
            if info is not None:
                self.adopt(info, startup=True)
                return True
            why = getattr(self.champion, "missing", "") or (
                f"no version of the registered model 'churn' has the alias 'champion' in {self.champion.where}")
            waited = time.monotonic() - start
            if limit_s is not None and waited >= limit_s:
                raise StreamError(f"no champion model after {waited:.0f} s: {why} (--champion-wait sets how long "
                                  "to wait)")
            if time.monotonic() - said >= 60.0:
                said = time.monotonic()
                self.logger.warning(
                    "stream: no champion model yet - %s. Waiting%s, polling every %.0f s: train one with "
                    "`churn train` (or `prefect deployment run train/weekly`).",
                    why, "" if limit_s is None else f" up to {limit_s:.0f} s", self.cfg.model_poll_s,
                )
            step = self.cfg.model_poll_s if limit_s is None else min(self.cfg.model_poll_s, max(limit_s - waited, 0.0))
            _sleep_until(done, step)
        return False

    def follow_champion(self) -> None:
        """One poll of the registry, applied now (the run loop does the same with the poll in
        a thread: :meth:`_fetch` there, :meth:`_apply` here)."""
        self._apply(self._fetch())

    def _fetch(self) -> _Fetched:
        """The slow part of a poll, safe off the loop: the alias lookup and, when the workers
        need another export (a new version; the pointer or its export gone), that export.
        Reads ``model``/``refused``, which only :meth:`_apply` changes, never during a poll."""
        try:
            info = self.champion.current()
        except Exception as exc:  # noqa: BLE001 - e.g. an MLflow database replaced by garbage: say it, keep the model
            first = (str(exc).strip().splitlines() or [""])[0]
            return _Fetched(None, problem=f"{type(exc).__name__}: {first}")
        if info is None:
            return _Fetched(None, problem=getattr(self.champion, "missing", "") or (
                f"no version of the registered model 'churn' has the alias 'champion' in {self.champion.where}"))
        if self.model is not None and info.version == self.model.version:
            why = self._pointer_damage()
            if why is None:
                return _Fetched(info)
            self.logger.warning("stream: %s; exporting churn v%s again for the workers", why, info.version)
        elif info.version == self.refused:
            return _Fetched(info)
        try:
            return _Fetched(info, ref=self._export(info))
        except Exception as exc:  # noqa: BLE001 - judged by _apply, on the loop
            return _Fetched(info, error=exc)

    def _export(self, info: ChampionInfo) -> ModelRef:
        with _EXPORTING:  # a poll thread left from an earlier run may still be writing one
            return self.champion.export(info, self.paths.models, self.feature_spec)

    def _apply(self, fetched: _Fetched) -> None:
        """A poll's result, on the loop: adopt or refuse what it exported; a poll that found
        no champion (the registry down or failing, the alias gone) is said once, and so is
        its end, while the workers keep scoring with the model they have."""
        if fetched.problem != self._poll_problem and self.model is not None:
            if fetched.problem:
                self.logger.warning("stream: the champion poll found none: %s; workers keep scoring with v%s",
                                    fetched.problem, self.model.version)  # fmt: skip
            elif fetched.info is not None:
                self.logger.info("stream: the registry answers the champion poll again (churn v%s)",
                                 fetched.info.version)  # fmt: skip
        self._poll_problem = fetched.problem
        if fetched.ref is not None or fetched.error is not None:
            assert fetched.info is not None
            self.adopt(fetched.info, fetched=fetched)

    def _pointer_damage(self) -> str | None:
        """Why the workers' pointer does not name the champion this supervisor adopted (one
        deleted or damaged under a running stream is written again, the export too, never
        left to make the workers wait, or score, blind), or None when it does."""
        try:
            ref = read_pointer(self.paths.champion)
        except StreamError as exc:
            return str(exc)
        if ref == self.model and (Path(ref.path) / META).exists():
            return None
        return f"champion pointer {self.paths.champion} is missing" if ref is None else (
            f"champion pointer {self.paths.champion} names v{ref.version} at {ref.path}, or its export is gone")

    def adopt(self, info: ChampionInfo, startup: bool = False, fetched: _Fetched | None = None) -> None:
        """Export ``info`` (or take ``fetched``, a poll's export of it or its error) and point
        the workers at it (refusing a feature-set mismatch, or a champion without the base
        rate the high-risk rule multiplies)."""
        rule = self.cfg.high_risk_rule
        try:
            if fetched is None:
                ref = self._export(info)
            elif fetched.error is not None:
                raise fetched.error
            else:
                assert fetched.ref is not None
                ref = fetched.ref
            rule.check_base_rate(info.version, ref.base_rate)
        except (ModelMismatchError, ModelUnreadableError) as exc:  # this version: refused until the alias moves
            self.refused = info.version
            if startup or self.model is None:
                raise
            self.logger.error("stream: %s Workers keep scoring with v%s.", exc, self.model.version)
            return
        except Exception as exc:  # noqa: BLE001 - the registry or artifact store failing now (unreachable, files
            # missing): at start fail closed; under a running stream keep scoring and try again next poll
            if startup or self.model is None:
                raise
            self.logger.warning("stream: cannot load churn v%s now (%s: %s); workers keep scoring with v%s, "
                                "retried at the next registry poll", info.version, type(exc).__name__, exc,
                                self.model.version)  # fmt: skip
            return
        publish(self.paths.champion, ref)
        old = None if self.model is None else self.model.version
        self.model = ref
        self.refused = None
        self.logger.info("stream: champion is churn v%s (%s)%s", ref.version, ref.name,
                         f", was v{old}; workers switch between batches" if old and old != ref.version else "")  # fmt: skip
        if not rule.needs_risks:  # top k %: the workers resolve it on their recent scores instead
            resolved = rule.resolve(base_rate=ref.base_rate, base_rate_source=ref.base_rate_source, version=ref.version)
            self.logger.info("stream: %s; reasons are stored for these users", resolved.text())

    # -- workers -------------------------------------------------------------------------
    def current(self) -> int:
        return sum(1 for p in self.procs.values() if not p.retiring)

    def scale_to(self, n: int, reason: str) -> None:
        """Run ``n`` workers: start or retire some, then rebalance the partitions."""
        active = sorted((w for w, p in self.procs.items() if not p.retiring), key=_index)
        keep = active[:n]
        retire = active[n:]
        new: list[str] = []
        i = 0
        while len(keep) + len(new) < n:
            wid = f"w{i}"
            if wid not in self.procs:
                new.append(wid)
            i += 1
        members = keep + new
        self.generation += 1
        self.assignment = (
            sticky_assign(self.log.num_partitions, members, previous=self.assignment)
            if members
            else {}
        )
        pids = {w: self.procs[w].popen.pid for w in keep}
        self.store.replace_assignments(self.assignment, generation=self.generation, pids=pids)
        for w in retire:
            self.procs[w].retiring = True  # its heartbeat now says "removed": it drains and exits
        for w in new:
            self.procs[w] = _Proc(w, self._spawn(w))
        if new:
            self.store.replace_assignments(self.assignment, generation=self.generation,
                                           pids={w: p.popen.pid for w, p in self.procs.items() if not p.retiring})  # fmt: skip
        shown = ", ".join(
            f"{w}: {list(ps)}"
            for w, ps in sorted(self.assignment.items(), key=lambda x: _index(x[0]))
        )
        self.logger.info("stream: %d worker(s) (%s) - %s", n, reason, shown)

    def _spawn(self, worker_id: str) -> subprocess.Popen[bytes]:
        # librdkafka properties (sasl.password) and the store URL may hold credentials: they
        # travel in the worker's environment, not on its command line (`ps`)
        props = self.log_config.get("kafka_properties")
        log = {k: v for k, v in self.log_config.items() if k != "kafka_properties"}
        spec = WorkerSpec(worker_id, str(self.data_dir), self.topic, asdict(self.cfg),
                          supervisor_pid=os.getpid(), log=log, drift=self.drift)  # fmt: skip
        env = dict(os.environ)
        env.update(WORKER_ENV | self.worker_env)
        env[STORE_URL_ENV] = self.store_url  # may hold a password: environment, not argv (`ps`)
        if props is not None:
            env["CHURN_KAFKA_PROPERTIES"] = json.dumps(props)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline.stream.worker", json.dumps(asdict(spec))], env=env
        )

    def reap(self) -> None:
        """Notice exited workers: retired ones leave, crashed ones restart, fatal ones stop us."""
        for wid, proc in list(self.procs.items()):
            code = proc.popen.poll()
            if code is None:
                if proc.retiring and proc.stop_sent is None:
                    proc.stop_sent = time.monotonic()
                elif (
                    proc.retiring
                    and time.monotonic() - (proc.stop_sent or 0) > self.cfg.drain_timeout_s
                ):
                    self.logger.warning(
                        "stream: worker %s did not stop within %.0f s; killing it (its partitions "
                        "resume from their last checkpoint)",
                        wid,
                        self.cfg.drain_timeout_s,
                    )
                    proc.popen.kill()
                continue
            if proc.retiring:
                del self.procs[wid]
                continue
            if code == EXIT_FATAL:
                msg = (
                    _read(self.paths.workers / f"{wid}.fatal")
                    or f"worker {wid} failed (exit {code})"
                )
                raise StreamError(msg)
            now = time.monotonic()
            proc.restarts = [t for t in proc.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(proc.restarts) > MAX_RESTARTS:
                last = _read(self.paths.workers / f"{wid}.error")
                raise StreamError(f"worker {wid} died {len(proc.restarts)} times within {RESTART_WINDOW_S:.0f} s "
                                  f"(last exit {_exit_text(code)}); "
                                  + (f"its last error: {last}" if last else "see its log lines above"))  # fmt: skip
            self.restarts += 1
            self.logger.warning("stream: worker %s died (%s); restarting it - it resumes from its checkpoints",
                                wid, _exit_text(code))  # fmt: skip
            proc.popen = self._spawn(wid)
            self.store.replace_assignments(self.assignment, generation=self.generation,
                                           pids={w: p.popen.pid for w, p in self.procs.items() if not p.retiring})  # fmt: skip

    def check_heartbeats(self) -> None:
        df = self.store.assignments()
        for row in df.itertuples(index=False):
            proc = self.procs.get(row.worker_id)
            if proc is None or proc.retiring or proc.popen.poll() is not None:
                continue
            if row.heartbeat_age_s > self.cfg.worker_timeout_s:
                self.logger.warning("stream: worker %s silent for %.0f s; killing it (it restarts from its "
                                    "checkpoints)", row.worker_id, row.heartbeat_age_s)  # fmt: skip
                proc.popen.kill()

    def drain(self, finish: bool = False) -> None:
        """Ask every worker to checkpoint and stop; kill those that do not within the
        timeout. ``finish`` (caught up or out of time, nobody asked to stop): SIGUSR1, "stop,
        letting work in flight end" -- the drift leader's running check gets up to
        ``drift_finish_s`` more -- instead of SIGTERM."""
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGUSR1 if finish else signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.drain_timeout_s + (self.cfg.drift_finish_s if finish else 0.0)
        for proc in self.procs.values():
            try:
                proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.logger.warning("stream: worker %s did not drain in time; killed (resumes from its last "
                                    "checkpoint next run)", proc.worker_id)  # fmt: skip
                proc.popen.kill()
                proc.popen.wait()
        self.procs.clear()
        try:
            self.store.replace_assignments({}, generation=self.generation + 1)
        except Exception as exc:  # noqa: BLE001 - shutting down: report, do not mask the cause
            self.logger.warning("stream: could not clear the assignments: %s", exc)

    # -- lag, autoscaling, health -----------------------------------------------------------
    def _start_offsets(self) -> dict[int, int]:
        """Where this run's count of events starts, per partition: the committed offset, or,
        for a partition with none committed but a checkpoint (the group's offsets file was
        moved aside, the documented recovery of a corrupt one), the checkpoint's offset,
        where its worker resumes. Counting from the log start there reported the whole log
        as this run's work."""
        committed = self.log.committed(self.cfg.group)
        start = self._committed(committed)
        for p in start:
            if p not in committed and self._checkpoints.path(p).exists():
                with contextlib.suppress(Exception):  # unreadable: the worker says so; count as before
                    ck = self._checkpoints.read(p)
                    if ck is not None:
                        start[p] = ck.meta.next_offset
        return start

    def _committed(self, committed: dict[int, int] | None = None) -> dict[int, int]:
        """Each partition's committed offset (``committed``: the group's, if already read),
        its start where none is."""
        if committed is None:
            committed = self.log.committed(self.cfg.group)
        out = {p: committed.get(p, self.log.start_offset(p)) for p in range(self.log.num_partitions)}
        for p, off in committed.items():  # a replay moves a committed offset back: count from there
            if p in out:  # (an offset not committed yet is a placeholder, not where a worker started)
                self._lowest[p] = min(self._lowest.get(p, off), off)
        return out

    def lags(self, committed: dict[int, int] | None = None) -> dict[int, int]:
        """Per partition: records between the committed offset (``committed``, else read
        now) and the log end."""
        committed = self._committed() if committed is None else committed
        return {p: max(self.log.end_offset(p) - off, 0) for p, off in committed.items()}

    def caught_up(self) -> bool:
        """Every committed offset is at the log end, and is backed by a checkpoint.

        One past the end is not caught up (the log lost records the group consumed): the
        worker that owns the partition refuses it with the remedy, or realigns a committed
        offset its checkpoint contradicts. Nor is a partition whose checkpoint was deleted
        (the recovery of a corrupt one) while its committed offset still says where that
        state was: the worker replays it from the log start. Nor is one whose checkpoint
        resumes before its committed offset (an older checkpoint restored from a backup):
        the worker commits the checkpoint's offset and scores the records after it again."""
        if self.model is None:
            return False
        for p, off in self._committed().items():
            if off != self.log.end_offset(p):
                return False
            # a local stat first: start_offset is a broker round trip on Kafka
            if not self._checkpoints.path(p).exists():
                if off > self.log.start_offset(p):
                    return False
            elif self._checkpoints.next_offset(p) != off:
                return False  # behind (or unreadable: its worker says why)
        return True

    def autoscale(self) -> None:
        decision = autoscale_step(self.policy, self, self.clock.now(), self.lags())
        self.store.record_decision(**decision.as_record())
        self.decisions.append({"time": decision.time.isoformat(), "action": decision.action.value,
                               "desired": decision.desired, "reason": decision.reason})  # fmt: skip
        if decision.action.value != "hold":
            self.logger.info("stream: autoscaler: %s", decision.reason)
        alert = alert_from_log(
            self.log, self.cfg.group, self.clock, self.store, consumers=self.current()
        )
        if alert.level.value != self.alert_level:
            self.alert_level = alert.level.value
            self.logger.log(logging.INFO if alert.level.value == "Healthy" else logging.WARNING,
                            "stream: health %s - %s", alert.level.value, "; ".join(alert.reasons))  # fmt: skip

    def summary(self, t0: float, start: dict[int, int], why: str) -> dict[str, Any]:
        end = self._committed()
        if self._started_at is not None:  # commits between two polls (a replay's start), where the log keeps them
            for p, entries in self.log.commit_history(self.cfg.group).items():
                for e in entries:
                    if e.when >= self._started_at:
                        self._lowest[p] = min(self._lowest.get(p, e.offset), e.offset)
        lags = self.lags(end)  # the lag of the offsets reported beside it, not of a later read
        if self.alert_level is None:
            alert = alert_from_log(self.log, self.cfg.group, self.clock, self.store, consumers=self.current())
            self.alert_level = alert.level.value
        return {
            "group": self.cfg.group, "topic": self.topic, "stopped": why,
            "seconds": round(time.monotonic() - t0, 3),
            # records consumed in this run: from the lowest offset committed during it (a
            # partition replayed after its checkpoint was deleted restarts at the log start)
            "events": sum(end[p] - min(start.get(p, 0), self._lowest.get(p, end[p])) for p in end),
            "committed": end, "lag": lags, "total_lag": sum(lags.values()),
            "model_version": None if self.model is None else self.model.version,
            "workers": self.current(), "restarts": self.restarts, "decisions": self.decisions[-20:],
            "health": self.alert_level,
        }  # fmt: skip


def _index(worker_id: str) -> int:
    return int(worker_id[1:]) if worker_id[1:].isdigit() else 1 << 30


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _sleep_until(done: Callable[[], bool], seconds: float) -> None:
    end = time.monotonic() + seconds
    while not done() and time.monotonic() < end:
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))
