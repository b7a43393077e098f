"""A scoring worker: owns some partitions exclusively and scores their users in micro-batches.

The loop, per owned partition::

    fetch a micro-batch -> decode (bad/late events to <topic>.dlq) -> update features
    -> read the touched users' vectors -> score them with the champion (one predict call)
    -> hand the rows to the background writer -> every checkpoint_interval_s: snapshot
    the state, and once the rows before it are written, write the checkpoint and commit
    the offset to the log's consumer group

A partial batch waits up to ``max_wait_s`` for more records; an idle worker sleeps with
exponential backoff (up to ``idle_sleep_max_s``) instead of spinning. Which partitions it
owns comes from the store's assignment table (``heartbeat``), or is fixed (tests,
benchmarks). The champion comes from the pointer file the supervisor maintains; a new
version is loaded between batches and every score row records its model version.

Run as a process by the supervisor: ``python -m pipeline.stream.worker '<json spec>'``.
Exit codes: 0 stopped cleanly, 3 fatal (do not restart: the message is in
``workers/<id>.fatal``), anything else a crash (the supervisor restarts it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pipeline.clock import Clock, SystemClock
from pipeline.errors import (
    ChurnError,
    ConfigError,
    FencedError,
    LogUnavailableError,
    ModelMismatchError,
    StoreError,
    StreamError,
)
from pipeline.features.spec import spec_for
from pipeline.log.base import PartitionLog
from pipeline.log.deadletter import DeadLetters, dead_letter_log
from pipeline.store.records import HistoryPolicy
from pipeline.stream.admission import Admission
from pipeline.stream.checkpoint import CheckpointMeta, CheckpointStore
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.metrics import StreamMetrics, percentiles
from pipeline.stream.model import ScoringModel, load_export, read_pointer
from pipeline.stream.offsets import check_position, record_crc
from pipeline.stream.partition import DeadLetterFilter, OwnedPartition, open_partition
from pipeline.stream.scorer import Scorer
from pipeline.stream.sink import Writer

EXIT_FATAL = 3
STAGES = ("fetch", "features", "read", "predict", "reasons", "rows", "handoff", "snapshot")


STORE_URL_ENV: Final = "CHURN_WORKER_STORE_URL"  # the store URL travels here, never in argv


@dataclass
class WorkerSpec:
    """Everything a worker process needs, passed as JSON on its command line - except secrets:
    the store URL (it may hold a password) comes in env ``CHURN_WORKER_STORE_URL``, librdkafka
    properties in ``CHURN_KAFKA_PROPERTIES``, both invisible to ``ps``."""

    worker_id: str
    data_dir: str
    topic: str
    config: dict[str, Any]
    partitions: list[int] | None = None  # None: follow the store's assignment
    until_caught_up: bool = False
    supervisor_pid: int | None = None  # stop (drain) if the supervisor dies: no orphans
    # how to open the log: pipeline.log.kafka_config.log_config(settings) - backend, bootstrap
    # servers, file options (librdkafka properties come in env CHURN_KAFKA_PROPERTIES,
    # kept off the command line); None: the file backend under data_dir
    log: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None  # DriftConfig fields; None: no drift monitoring


class Worker:
    def __init__(
        self,
        worker_id: str,
        log: PartitionLog,
        store: Any,
        paths: StreamPaths,
        config: StreamConfig | None = None,
        *,
        partitions: Sequence[int] | None = None,
        model: ScoringModel | None = None,
        clock: Clock | None = None,
        dlq: PartitionLog | None = None,
        logger: logging.Logger | None = None,
        drift: Any = None,  # a DriftConfig (or its dict): the drift leader runs checks (drift_hook)
        state: Any = None,  # a CheckpointBackend (pipeline.stream.state); None: files under paths
        assignment: Callable[[], Any] | None = None,  # heartbeat -> owned partitions (host.py)
        feature_spec: Any = None,  # the topic's FeatureSpec; None: from the data dir (spec_for)
    ) -> None:
        self.id = worker_id
        self.log = log
        self.store = store
        self.paths = paths
        self.cfg = config or StreamConfig()
        self.clock = clock or SystemClock()
        self.logger = logger or logging.getLogger("pipeline.stream")
        self.fixed = None if partitions is None else tuple(sorted(partitions))
        self.dlq_log = dlq or dead_letter_log(log)
        self._own_dlq = dlq is None  # opened here: closed by shutdown (Kafka: its consumers, files: their fds)
        self.dead_letters = DeadLetters(self.dlq_log, self.clock, log.name)
        # files under the data dir (one host), or PgStateBackend (leases fenced by epoch)
        self.checkpoints = state or CheckpointStore(paths.checkpoints, log.name, self.cfg.group)
        self.feature_spec = feature_spec or spec_for(paths.data_dir, log.name, log)  # the topic's features
        self.admission = Admission(self.clock, self.cfg.max_future_skew, self.cfg.dedup_window)
        self.scorer = Scorer(
            self.cfg.high_risk_rule, self.cfg.reasons_top_k, self.cfg.reasons_method == "exact"
        )
        if model is not None:
            self.scorer.check(model)
        self.model = model
        self._pointer_seen: tuple[int, int] | None = None
        self._refused: str | None = None
        self.parts: dict[int, OwnedPartition] = {}
        self.wanted: tuple[int, ...] = ()
        self.stopping = False
        self.removed = False
        now = self.clock.monotonic()
        self.metrics = StreamMetrics(worker_id, now)
        self.stage_s = dict.fromkeys(STAGES, 0.0)  # CPU seconds of the batch loop per stage
        self.batch_cpu_ms: deque[float] = deque(maxlen=100_000)
        self.batch_total_ms: deque[float] = deque(maxlen=100_000)  # including backpressure waits
        self.checkpoints_written = 0
        self._ckpt_started = self._ckpt_done = 0  # in flight: handed to the writer, not yet written
        self.first_batch: float | None = None
        self.last_batch: float | None = None
        self._next_metrics = now + self.cfg.metrics_interval_s
        self._dups_logged = 0
        self._next_model = now
        heartbeat = None if self.fixed is not None else (assignment or (lambda: store.heartbeat(worker_id)))
        self.drift = _drift_hook(worker_id, drift, store, paths.data_dir, self.clock, self.logger)
        self.writer = Writer(store, flush_interval_s=self.cfg.flush_interval_s,
                             max_pending_rows=self.cfg.max_pending_rows, max_write_rows=self.cfg.max_write_rows,
                             heartbeat=heartbeat, heartbeat_interval_s=self.cfg.heartbeat_interval_s,
                             name=f"{worker_id}-writer", history=history_policy(self.cfg))  # fmt: skip

    # -- the loop --------------------------------------------------------------------------
    def run(
        self,
        should_stop: Callable[[], bool] = lambda: False,
        until_caught_up: bool = False,
        max_seconds: float | None = None,
        finish: Callable[[], bool] = lambda: False,
    ) -> dict[str, Any]:
        """Process until stopped (or caught up / out of time); always drains on the way out.

        A run that ends on its own (caught up, out of time) or is asked to ``finish`` (a
        stop that lets work in flight end: the supervisor's when the group caught up) waits
        up to ``drift_finish_s`` for the drift check in flight; a ``should_stop()`` stop
        (Ctrl-C, SIGTERM) does not wait, nor does an error, and one during the wait ends it."""
        t0 = time.monotonic()
        idle = 0.002
        ended = False
        try:
            self.sync_assignment()
            while not (self.stopping or should_stop() or self.removed or finish()):
                if max_seconds is not None and time.monotonic() - t0 >= max_seconds:
                    break
                self.check_model()
                worked = self.step()
                self.sync_assignment()
                self.maybe_tick()
                if self.drift is not None:
                    self.drift.tick(self)
                if until_caught_up and self.caught_up():
                    break
                if worked:
                    idle = 0.002
                else:
                    time.sleep(min(idle, self.cfg.max_wait_s or idle, self.cfg.idle_sleep_max_s))
                    idle = min(idle * 2, self.cfg.idle_sleep_max_s)
            ended = not (self.stopping or should_stop() or self.removed)  # caught up, out of time or finish()
        finally:
            self.shutdown(drift_wait_s=self.cfg.drift_finish_s if ended else 0.0,
                          give_up=lambda: self.stopping or should_stop())
        return self.summary()

    def step(self) -> bool:
        """One pass over the owned partitions; True if any batch was processed."""
        if self.model is None:
            return False
        worked = behind = False
        cfg = self.cfg
        for part in list(self.parts.values()):
            now = self.clock.monotonic()
            # The log end is asked for only within a batch of it: further behind, the answer
            # decides nothing here (a full batch either way), and asking (a directory listing
            # and a read to the file's end) was ~2 % of the stream's CPU, twice per batch.
            # A fetch that comes back short forgets it (process_batch), so a log cut under
            # the group is still noticed below, one short fetch later.
            if part.known_end - part.position <= cfg.batch_size:
                part.known_end = self.log.end_offset(part.partition)
            avail = part.known_end - part.position
            if avail < 0:  # the log lost records under us: never skip the reused offsets
                check_position(self.log, cfg.group, part.partition, part.position)
            behind = behind or avail > cfg.batch_size
            if avail <= 0:
                part.pending_since = None
                quiet = now - part.last_activity >= max(cfg.max_wait_s, 0.5)
                if part.dirty and (
                    quiet or now - part.last_checkpoint >= cfg.checkpoint_interval_s
                ):
                    self.checkpoint(part, force=False)  # caught up: checkpoint while idle
                continue
            if avail < cfg.batch_size and cfg.max_wait_s > 0:
                if part.pending_since is None:
                    part.pending_since = now
                if now - part.pending_since < cfg.max_wait_s:
                    continue
            n = self.process_batch(part)
            worked = True
            if cfg.max_events_per_s:
                time.sleep(n / cfg.max_events_per_s)
            if now - part.last_checkpoint >= cfg.checkpoint_interval_s:
                self.checkpoint(part, force=False)
        # Behind the log: let rows coalesce until each partition's checkpoint flushes them.
        self.writer.flush_interval_s = (
            max(cfg.flush_interval_s, cfg.checkpoint_interval_s) if behind else cfg.flush_interval_s
        )
        return worked

    def process_batch(self, part: OwnedPartition) -> int:
        # Stages are accounted in CPU time of this thread (wall time on a shared machine
        # would charge other processes' work to whichever stage was running); the batch
        # latency is wall time, as a user sees it.
        p, st, cfg, clock = part.partition, self.stage_s, self.cfg, time.thread_time
        w0, c0, waited = time.perf_counter(), clock(), 0.0
        values, nxt = self.log.fetch_values(p, part.position, cfg.batch_size, cfg.max_batch_bytes)
        c1 = clock()
        dups = self.admission.duplicates
        out = part.engine.process(p, values, first_offset=part.position,
                                  dlq=DeadLetterFilter(self.dead_letters, part.skip_dead), admit=self.admission)  # fmt: skip
        dups = self.admission.duplicates - dups
        c2 = clock()
        st["fetch"] += c1 - c0
        st["features"] += c2 - c1
        if out.touched and out.watermark is not None:
            frame = part.engine.read(p, out.watermark, out.touched, slots=out.touched_slots)
            c3 = clock()
            st["read"] += c3 - c2
            # reasons deferred to the writer: computed for the rows it writes (after coalescing)
            chunk = self.scorer.score(p, frame, self.model, defer=True,  # type: ignore[arg-type]
                                      slots=out.touched_slots, slot_space=out.slot_space)  # fmt: skip
            c4 = clock()
            waited = self.writer.put(chunk)
            st["handoff"] += clock() - c4
            predict_s, reasons_s = self.scorer.take_timings()
            st["predict"] += predict_s
            st["reasons"] += reasons_s
            if self.drift is not None:  # drift leader only: off the hot path (drift_hook)
                self.drift.after_batch(self, part, out.watermark, frame, chunk.risk)
            st["rows"] += (c4 - c3) - predict_s - reasons_s
        done = time.perf_counter()
        self.batch_cpu_ms.append((clock() - c0) * 1000.0)
        part.position = nxt
        if values:
            part.last_crc = record_crc(values[-1])
        part.dirty = True
        part.last_activity = self.clock.monotonic()
        part.pending_since = None
        # Latency of the batch's own work; time blocked because the store writer is behind
        # is throughput (it shows as lag), counted apart in the summary.
        self.metrics.batch(p, len(values), len(out.invalid) + len(out.late), done - w0 - waited, dups)
        self.batch_total_ms.append((done - w0) * 1000.0)
        if self.first_batch is None:
            self.first_batch = w0
        self.last_batch = done
        if len(values) < cfg.batch_size:
            part.known_end = -1  # a short fetch: the end may be nearer (or cut): ask next time
        return len(values)

    def checkpoint(self, part: OwnedPartition, force: bool = True) -> bool:
        """Snapshot now; write it (and commit the offset) once the rows before it are stored.

        Periodic checkpoints (``force=False``) wait while another one is still being
        written: at most one snapshot (tens of MB for a big partition) is in flight.
        """
        if not force and self._ckpt_started > self._ckpt_done:
            return False
        t = time.thread_time()
        state = part.engine.snapshot(part.partition)
        dedup = self.admission.snapshot(part.partition)  # taken with the state: same offset
        dp = part.partition % self.dlq_log.num_partitions
        meta = CheckpointMeta(
            topic=self.log.name, group=self.cfg.group, partition=part.partition, next_offset=part.position,
            dlq_end=self.dlq_log.end_offset(dp), created_at=self.clock.now().isoformat(),
            model_version=None if self.model is None else self.model.version, last_crc=part.last_crc,
        )  # fmt: skip
        self.stage_s["snapshot"] += time.thread_time() - t

        def write() -> None:
            try:
                self.checkpoints.write(meta, state, dedup)
            except FencedError as exc:  # the lease was lost: the new owner resumes from its checkpoint
                self.logger.warning("worker %s: %s", self.id, exc)
                return
            part.committed = meta.next_offset
            self.checkpoints_written += 1
            self._ckpt_done += 1  # written by this (writer) thread only
            # The checkpoint is the truth; the group's offsets are for `churn lag` and lag.
            try:
                self.log.commit(self.cfg.group, {meta.partition: meta.next_offset}, self.clock.now())
            except ChurnError as exc:
                self.logger.warning("offset commit of partition %d failed: %s", meta.partition, exc)

        self._ckpt_started += 1  # written by the batch loop only
        self.writer.after(write, partitions=(part.partition,))
        part.dirty = False
        part.last_checkpoint = self.clock.monotonic()
        return True

    # -- ownership -------------------------------------------------------------------------
    def sync_assignment(self) -> None:
        """Release partitions no longer ours (checkpoint first); take over new ones."""
        if self.fixed is not None:
            wanted: tuple[int, ...] | None = self.fixed
        else:
            if self.writer.heartbeat_at == 0.0:
                self.writer.beat()  # the first answer before the first batch
            wanted = self.writer.owned
        if wanted is None:
            self.logger.info("worker %s: no longer in the group (scaled down); stopping", self.id)
            self.removed = True
            return
        self.wanted = tuple(wanted)
        for p in [p for p in self.parts if p not in wanted]:
            self.release(p)
        now = self.clock.monotonic()
        for p in wanted:
            if p not in self.parts:
                part = open_partition(
                    p, self.log, self.dlq_log, self.checkpoints, self.cfg.lateness, now, self.feature_spec,
                    self.admission,
                )
                if part is not None:
                    self._check_store(part)
                    self.parts[p] = part
                    self._align_offset(part)
                    where = (
                        f"checkpoint at offset {part.position}"
                        if part.restored_from
                        else f"offset {part.position} (no checkpoint)"
                    )
                    self.logger.info("worker %s: took partition %d over from %s", self.id, p, where)

    def _check_store(self, part: OwnedPartition) -> None:
        """Refuse a checkpoint whose scores the store no longer holds. Its feature state
        remembers every user this group scored in the partition, and those scores were
        stored before the checkpoint was written; a store with none of them was deleted,
        emptied (a 0-byte SQLite file is a valid empty database) or replaced since. Resuming
        would score only the users of new events and leave the others out of the store for
        good, with exit 0: stop before anything is written instead."""
        if part.restored_from is None:
            return
        p = part.partition
        users = len(part.engine.state(p))
        if not users or self.store.holds_scores(p):
            return
        part.lease.release()
        self.admission.drop(p)
        group = self.cfg.group
        raise StreamError(
            f"store {self.store.url} holds no score of partition {p}, but its checkpoint {part.restored_from} "
            f"resumes it at offset {part.position} with the features of {users:,} users this group scored: "
            "the store was deleted, emptied or replaced after they were stored. Nothing was scored, so nothing "
            "more is lost. Put the store back (restore its file from a backup, or set CHURN_STORE_URL to the "
            f"store this group wrote), or rebuild it from the log: `churn lag --group {group} --reset-offsets "
            "earliest`, then `churn stream` (scores and their history come back from the events)"
        )

    def _align_offset(self, part: OwnedPartition) -> None:
        """The checkpoint is the truth: if the group's committed offset says otherwise (reset
        outside `churn lag`, or a crash between checkpoint and commit), commit the checkpoint's
        offset, so lag and `--until-caught-up` never wait for work the stream will not do.
        Without a checkpoint (a new group, or one deleted to recover from corruption) the
        partition is replayed from the log start, so that is committed: its lag shows the
        replay instead of the offset of a state that no longer exists."""
        committed = self.log.committed(self.cfg.group).get(part.partition)
        if committed == part.position or (committed is None and not part.restored_from):
            return  # agreed, or a new group: its first checkpoint commits
        if committed is not None:
            where = "its checkpoint" if part.restored_from else "its replay (no checkpoint: from the log start)"
            self.logger.warning(
                "worker %s: partition %d's committed offset %d disagreed with %s (%d); committed %d "
                "(reset offsets with `churn lag --reset-offsets`, which moves the checkpoints too)",
                self.id, part.partition, committed, where, part.position, part.position,
            )  # fmt: skip
        try:
            self.log.commit(self.cfg.group, {part.partition: part.position}, self.clock.now())
        except ChurnError as exc:
            self.logger.warning("offset commit of partition %d failed: %s", part.partition, exc)

    def release(self, p: int) -> None:
        part = self.parts.pop(p)
        if not part.lease.held:  # fenced (lease lost, PostgreSQL state): write nothing more
            self.admission.drop(p)
            self.logger.warning("worker %s: lost partition %d's lease; dropped it at offset %d without a "
                                "checkpoint (its new owner resumes from the last one)", self.id, p, part.position)
            return
        if part.dirty:
            self.checkpoint(part)
        self.writer.flush()
        part.lease.release()
        self.admission.drop(p)
        self.logger.info(
            "worker %s: handed partition %d over at offset %d", self.id, p, part.position
        )

    def caught_up(self) -> bool:
        if set(self.parts) != set(self.wanted) or self.model is None:
            return False
        if any(part.known_end > part.position for part in self.parts.values()):
            return False  # records known to be there (see step)
        return all(self.log.end_offset(p) <= part.position for p, part in self.parts.items())

    # -- model -----------------------------------------------------------------------------
    def check_model(self) -> None:
        """Switch to a new champion export between batches (the pointer file changed)."""
        now = self.clock.monotonic()
        if now < self._next_model and self.model is not None:
            return
        self._next_model = now + self.cfg.model_check_s
        try:
            st = self.paths.champion.stat()
        except FileNotFoundError:
            if self._pointer_seen is None:
                self._pointer_seen = (0, 0)
                self.logger.info(
                    "worker %s: waiting for the champion export (%s)", self.id, self.paths.champion
                )
            return
        seen = (st.st_mtime_ns, st.st_size)
        if seen == self._pointer_seen:
            return
        self._pointer_seen = seen
        try:
            ref = read_pointer(self.paths.champion)
        except StreamError as exc:  # torn or overwritten: the supervisor writes it again
            self.logger.error("worker %s: %s. %s", self.id, exc, f"Still scoring with v{self.model.version}."
                              if self.model is not None else "Not scoring until it is rewritten.")  # fmt: skip
            return
        if ref is None or (self.model is not None and ref.version == self.model.version):
            return
        try:
            model = load_export(ref, self.cfg.predict_threads, self.feature_spec)
            self.scorer.check(model)  # the high-risk rule can be resolved for it
        except ModelMismatchError as exc:
            if self.model is None:
                raise
            self.logger.error(
                "worker %s: %s Still scoring with v%s.", self.id, exc, self.model.version
            )
            return
        old = None if self.model is None else self.model.version
        self.model = model
        self.logger.info("worker %s: scoring with champion v%s%s; predictor: %s", self.id, model.version,
                         f" (was v{old})" if old else "", getattr(model, "predictor", "?"))  # fmt: skip

    # -- metrics and shutdown ----------------------------------------------------------------
    def maybe_tick(self, force: bool = False) -> None:
        now = self.clock.monotonic()
        if not force and now < self._next_metrics:
            return
        self._next_metrics = now + self.cfg.metrics_interval_s
        positions = {p: part.position for p, part in self.parts.items()}
        committed = {
            p: part.committed for p, part in self.parts.items() if part.committed is not None
        }
        rows = self.metrics.tick(self.clock.now(), now, self.log, self.cfg.group, positions, committed,
                                 None if self.model is None else self.model.version)  # fmt: skip
        if self.metrics.duplicates > self._dups_logged:  # counted, never dropped silently
            self.logger.warning("worker %s: dropped %d duplicate event(s) since the last tick (event ids "
                                "already applied in their partition; %d in all)", self.id,
                                self.metrics.duplicates - self._dups_logged, self.metrics.duplicates)  # fmt: skip
            self._dups_logged = self.metrics.duplicates
        if rows:
            self.writer.after(lambda: self.store.record_metrics(rows), partitions=())

    def shutdown(self, drift_wait_s: float = 0.0, give_up: Callable[[], bool] = lambda: False) -> None:
        """Checkpoint every dirty partition, write everything, release the leases; the
        drift check in flight gets ``drift_wait_s`` (or until ``give_up()``) to finish."""
        try:
            if self.writer.error is None:
                dirty = [p for p in self.parts.values() if p.dirty]
                for part in dirty:
                    self.checkpoint(part)
                self.maybe_tick(force=True)
                self.writer.flush()
                if self.parts:
                    self.logger.info("worker %s: stopped; partitions %s checkpointed at %s", self.id,
                                     sorted(self.parts), {p: x.position for p, x in sorted(self.parts.items())})  # fmt: skip
        finally:
            self.writer.close(flush=False)
            if self.drift is not None:
                self.drift.close(wait=drift_wait_s if self.writer.error is None else 0.0, give_up=give_up)
            for part in self.parts.values():
                part.lease.release()
            self.parts.clear()
            if self._own_dlq:
                self.dlq_log.close()

    def summary(self) -> dict[str, Any]:
        pct = percentiles(self.metrics.latencies_ms) or (None, None, None)
        span = (self.last_batch or 0.0) - (self.first_batch or 0.0)
        return {
            "worker": self.id, "events": self.metrics.events, "dead_letters": self.metrics.dead,
            "duplicates": self.metrics.duplicates, "future": self.admission.future,
            "batches": self.metrics.batches, "seconds": span,
            "events_per_s": self.metrics.events / span if span > 0 else 0.0,
            "batch_p50_ms": pct[0], "batch_p95_ms": pct[1], "batch_p99_ms": pct[2],
            "batch_cpu_p99_ms": (percentiles(self.batch_cpu_ms) or (None, None, None))[2],
            "batch_total_p99_ms": (percentiles(self.batch_total_ms) or (None, None, None))[2],
            "checkpoints": self.checkpoints_written, "stages_s": dict(self.stage_s),
            "writer": dict(self.writer.stats), "reasons_rows": self.scorer.reasons_rows,
            "high_risk": None if self.scorer.resolved is None else self.scorer.resolved.text(),
            "model_version": None if self.model is None else self.model.version,
            "first_batch": self.first_batch, "last_batch": self.last_batch,
        }  # fmt: skip


def history_policy(cfg: StreamConfig) -> HistoryPolicy | None:
    """The score-history rule of a stream config (``history_interval_s`` 0: none)."""
    return HistoryPolicy(cfg.history_interval_s) if cfg.history_interval_s else None


def _drift_hook(worker_id: str, drift: Any, store: Any, data_dir: Path, clock: Clock, logger: logging.Logger) -> Any:
    if not drift:
        return None
    from pipeline.drift.config import DriftConfig
    from pipeline.stream.drift_hook import DriftHook

    cfg = drift if isinstance(drift, DriftConfig) else DriftConfig(**drift)
    return DriftHook(worker_id, cfg, store, data_dir, clock, logger) if cfg.enabled else None


# -- process entry point ------------------------------------------------------------------
GC_THRESHOLDS: Final = (50_000, 20, 100)  # the default (700, 10, 10) collected ~2,400 times per 1M events
SWITCH_INTERVAL_S: Final = 0.0005  # CPython's default 0.005


def prepare_process() -> None:
    """Process-wide settings for a worker, once its long-lived objects exist (the bench's
    worker child calls it too).

    * ``gc.freeze()``: long-lived objects (user ids, model) need no cyclic collection;
      young-generation collections then stay cheap and do not show up as batch latency.
    * Rarer collections (:data:`GC_THRESHOLDS`): the loop and the writer allocate short-
      lived lists and dicts by the million and make almost no cycles; with the default
      thresholds the collector ran ~2,400 times per 1M events (measured: 8 % of the
      worker's CPU, and the slowest batches).
    * A shorter GIL switch interval (:data:`SWITCH_INTERVAL_S`): when a batch's numba
      kernel or XGBoost call returns while the writer thread runs Python (coalescing,
      reasons, row conversion), the batch waits for the GIL up to the switch interval;
      with CPython's 5 ms default, a batch with several such calls lost tens of ms
      (measured p99 50 -> 36 ms at batches of 1,000).
    """
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def main(argv: list[str] | None = None) -> int:
    import signal

    from pipeline.log.kafka_config import open_log_config
    from pipeline.store import Store

    args = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec(**json.loads(args[0]))
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {spec.worker_id} %(levelname)s %(message)s"
    )
    logger = logging.getLogger("pipeline.stream")
    cfg = StreamConfig(**spec.config)
    paths = StreamPaths(Path(spec.data_dir), cfg.group)
    paths.workers.mkdir(parents=True, exist_ok=True)
    fatal = paths.workers / f"{spec.worker_id}.fatal"
    fatal.unlink(missing_ok=True)
    (paths.workers / f"{spec.worker_id}.error").unlink(missing_ok=True)
    stop = {"now": False, "finish": False}

    def _stop(signum: int, _frame: Any) -> None:
        stop["now"] = True

    def _finish(signum: int, _frame: Any) -> None:  # the supervisor's "caught up": let work in flight end
        stop["finish"] = True

    def should_stop() -> bool:
        return stop["now"] or (
            spec.supervisor_pid is not None and os.getppid() != spec.supervisor_pid
        )

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, _finish)
    worker = None
    try:
        log = open_log_config(spec.data_dir, spec.topic, spec.log)
        if not (store_url := os.environ.get(STORE_URL_ENV)):
            raise ConfigError(f"{STORE_URL_ENV} is not set: start workers through the stream "
                              "supervisor (`churn stream`), which passes the store URL there")
        store = Store(store_url)
        worker = Worker(
            spec.worker_id, log, store, paths, cfg, partitions=spec.partitions, logger=logger, drift=spec.drift
        )
        prepare_process()
        summary = worker.run(should_stop, until_caught_up=spec.until_caught_up, finish=lambda: stop["finish"])
        out = paths.workers / f"{spec.worker_id}.{os.getpid()}.summary.json"
        out.write_text(json.dumps(summary, default=str))
        return 0
    except (StoreError, LogUnavailableError, OSError) as exc:
        # perhaps passing (a locked database, a broker that did not answer, a full disk): restart
        # me; the supervisor names this last error if it gives up
        logger.error("%s", exc)
        with contextlib.suppress(OSError):
            (paths.workers / f"{spec.worker_id}.error").write_text(str(exc))
        return 1
    except ChurnError as exc:  # a checkpoint, model or configuration problem: restarting won't help
        logger.error("%s", exc)
        fatal.write_text(str(exc))
        return EXIT_FATAL


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
