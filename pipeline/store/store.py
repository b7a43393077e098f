"""The store: current scores, sampled score history, stream metrics, autoscaler
decisions, worker assignments and drift runs (:mod:`pipeline.store.drift`), behind one
small class.

Writes are bulk, idempotent upserts (``INSERT ... ON CONFLICT``, one statement per
batch), so a worker that re-processes a batch after a crash rewrites the same rows.
History points go in the same transaction as one columnar segment row per write
(:mod:`pipeline.store.segments`); readers resolve segments to the newest point per user
and interval, so a replayed write reads back the same. Writers merge segments as they
go (``maybe_compact_history``; reads are correct at every step).
A score never goes back in event time: an upsert only replaces a user's row when its
``features_time`` is not older than the stored one (a zombie worker that lost its
partition cannot overwrite the new owner's fresher scores).

>>> from pipeline.clock import FakeClock
>>> store = Store("sqlite://", clock=FakeClock())
>>> t = FakeClock().now()
>>> store.upsert_scores([{"user_id": "u1", "risk": 0.8, "model_version": "3", "features_time": t}])
WriteResult(scores=1, history=1, stale=0, duplicates=0)
>>> store.current_scores(top_k=1)[["user_id", "risk"]].to_dict("records")
[{'user_id': 'u1', 'risk': 0.8}]
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DatabaseError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.sql.dml import Insert

from pipeline.clock import Clock, SystemClock
from pipeline.errors import ConfigError, InvalidRowError, StoreError, StoreSchemaError
from pipeline.store import queries, segments
from pipeline.store import schema as s
from pipeline.store.assignments import Assignments
from pipeline.store.bulk import Bulk, Statement
from pipeline.store.drift import DriftRuns
from pipeline.store.engine import BUSY_TIMEOUT_S, WRITE_OPTION, damaged, open_engine, shown
from pipeline.store.migrations import SCHEMA_VERSION, current_version, migrate
from pipeline.store.realised import RealisedRuns
from pipeline.store.records import HistoryPolicy, StreamMetric, WriteResult
from pipeline.store.rows import (
    PointRows,
    ScoreColumns,
    ScoreRow,
    TimeCodec,
    check_time,
    latest,
    latest_pair,
    time_us,
    validate_scores,
)
from pipeline.store.walcheckpoint import Checkpointer

DEFAULT_HISTORY = HistoryPolicy()
HISTORY_COMPACT_AFTER = 64  # flush segments (one per write) before writers merge them
HISTORY_MAX_RUNS = 8  # compaction runs before the next compaction merges everything
log = logging.getLogger(__name__)
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Store(queries.Readers, Assignments, DriftRuns, RealisedRuns):
    """``Store(url)``: open (and create or migrate) the store at a SQLAlchemy URL.

    ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing.
    ``clock`` stamps ``updated_at``, heartbeats and assignment times.
    ``read_only=True`` (the dashboard) creates and migrates nothing: the store must exist
    at this code's schema version (else :class:`StoreSchemaError` says what to run), and
    every write method raises :class:`StoreError`.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        clock: Clock | None = None,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
    ) -> None:
        self.clock = clock or SystemClock()
        self.read_only = read_only
        # history compaction policy (maybe_compact_history); 0: writers never compact
        self.history_compact_after = HISTORY_COMPACT_AFTER
        self.history_max_runs = HISTORY_MAX_RUNS
        self._history_writes = 0
        engine = open_engine(
            url, busy_timeout_s=busy_timeout_s, read_only=read_only, background_checkpoints=True
        )
        self.dialect = engine.dialect.name
        self._checkpointer: Checkpointer | None = None
        if schema is not None:
            if self.dialect != "postgresql":
                engine.dispose()
                raise ConfigError(
                    f"store schema {schema!r} given for {shown(engine.url)!r}: schemas are for "
                    "PostgreSQL; drop the schema option or use a postgresql+psycopg:// URL"
                )
            if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
                engine.dispose()
                raise ConfigError(
                    f"store schema {schema!r}: use 1-63 characters from [A-Za-z0-9_], not "
                    "starting with a digit"
                )
            try:
                if not read_only:
                    with engine.begin() as conn:
                        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            except IntegrityError:  # two processes created it at once: it exists now
                pass
            engine = engine.execution_options(schema_translate_map={None: schema})
        self.engine: Engine = engine
        self.schema = schema
        self.codec = TimeCodec(self.dialect)
        self._insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        self._bulk = Bulk(engine.dialect, schema)
        if read_only:
            self._check_version()
            return
        db = engine.url.database or ""
        if self.dialect == "sqlite" and db not in ("", ":memory:") and "memory" not in db:
            self._checkpointer = Checkpointer(Path(db))
        try:
            with self._write() as conn:
                migrate(conn, now=self.clock.now())
        except BaseException:
            self.close()  # a damaged or unreachable store: leave no pool or checkpointer behind
            raise

    def _check_version(self) -> None:
        """Read-only open: the schema must be exactly this code's (nothing is migrated)."""
        try:
            with self._read() as conn:
                found = current_version(conn)
        except StoreError:
            self.engine.dispose()
            raise
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot read store {self.url!r}: {exc.orig or exc}") from None
        if found == SCHEMA_VERSION:
            return
        self.engine.dispose()
        if found == 0:
            why = "holds no churn tables yet: run the stream (`churn stream`) to create them"
        elif found < SCHEMA_VERSION:
            why = (
                f"has schema version {found}, older than this code's {SCHEMA_VERSION}: run "
                "`churn stream` (any writer migrates it on open), then reload"
            )
        else:
            why = (
                f"has schema version {found}, newer than this code's {SCHEMA_VERSION}: "
                "upgrade churn-intelligence, or point CHURN_STORE_URL at another database"
            )
        raise StoreSchemaError(f"store {self.url!r} {why}")

    @classmethod
    def from_settings(cls, settings: Any, clock: Clock | None = None) -> Store:
        """The store of ``Settings`` (``CHURN_STORE_URL``, default SQLite in the data dir)."""
        return cls(settings.resolved_store_url, clock=clock)

    @property
    def url(self) -> str:
        return shown(self.engine.url)

    def __repr__(self) -> str:
        schema = "" if self.schema is None else f", schema={self.schema!r}"
        return f"Store({self.url!r}{schema})"

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()

    def sync(self) -> None:
        """Make every committed write durable across a power cut, now.

        SQLite runs WAL with ``synchronous=NORMAL``: a commit is atomic and survives a
        killed process, but reaches the disk only at the next WAL checkpoint, so a power
        cut may roll back the last commits. That is safe only if nothing outside the
        database claims them first; the stream's checkpoint files do (they are fsynced).
        So the writer calls this before writing a checkpoint: one ``fsync`` of the WAL
        file (Linux flushes the file's pages whichever descriptor wrote them; commits
        already checkpointed into the database file were fsynced by that checkpoint).
        Ordering scores -> sync -> checkpoint file keeps exactly-once across power loss
        at one fsync per checkpoint instead of one per commit (``synchronous=FULL``).
        PostgreSQL commits are durable when they return (``synchronous_commit``): no-op.
        """
        if self._checkpointer is None:
            return
        try:
            fd = os.open(self._checkpointer.wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL: everything is in the (checkpointed) file
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return current_version(conn)

    # -- connections ---------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``, waits up to the busy timeout)."""
        if self.read_only:
            raise StoreError(f"store {self.url!r} was opened read-only: it cannot be written")
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with conn.begin():
                    yield conn
                if self._checkpointer is not None:
                    self._checkpointer.after_commit(conn.connection.driver_connection)
        except OperationalError as exc:
            raise StoreError(f"store {self.url!r}: write failed: {exc.orig or exc}") from exc
        except DatabaseError as exc:
            if (broken := damaged(self.url, exc)) is not None:
                raise broken from exc
            raise
        except self.engine.dialect.dbapi.OperationalError as exc:
            # the driver's own error, from the statements ``Bulk`` sends below SQLAlchemy
            # (PostgreSQL's COPY and pipeline): a lost connection, a cancelled statement
            raise StoreError(f"store {self.url!r}: write failed: {exc}") from exc
        except self.engine.dialect.dbapi.Error as exc:
            # any other driver error from there arrives as SQLAlchemy's class for it (a
            # missing table: ProgrammingError), as it would through SQLAlchemy
            raise DBAPIError.instance(None, None, exc, self.engine.dialect.dbapi.Error,
                                      dialect=self.engine.dialect) from exc  # fmt: skip

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except DatabaseError as exc:
            if (broken := damaged(self.url, exc)) is not None:
                raise broken from exc
            raise

    def _upsert(self, table: Table, keys: Sequence[str], update_cols: Sequence[str]) -> Insert:
        ins = self._insert(table)
        if not update_cols:
            return ins.on_conflict_do_nothing(index_elements=list(keys))
        return ins.on_conflict_do_update(
            index_elements=list(keys), set_={c: ins.excluded[c] for c in update_cols}
        )

    # -- scores --------------------------------------------------------------------------
    def upsert_scores(
        self,
        rows: pd.DataFrame | ScoreColumns | Sequence[ScoreRow] | Sequence[Mapping[str, Any]],
        *,
        history: HistoryPolicy | None = DEFAULT_HISTORY,
    ) -> WriteResult:
        """Write the current score of each user in ``rows`` (see :class:`ScoreRow`; a frame
        or :class:`~pipeline.store.rows.ScoreColumns` column-wise) and,
        unless ``history`` is None, its history points (one per user per event-time
        interval, :class:`HistoryPolicy`), in one transaction.

        ``rows`` may hold a user several times (e.g. the scores of several micro-batches):
        the newest row is its current score, and each interval's newest row its point
        there. A row older (``features_time``) than the user's stored score is not a
        current score (``WriteResult.stale``), though it may still be an interval's point.
        """
        given = len(rows)
        every = validate_scores(rows)
        if history is None:
            batch, points = latest(every), None
        else:  # the current scores and the (user, interval) points, from one sort
            batch, points = latest_pair(every, history.bucket_us(every.features_time))
        dupes = given - len(batch)
        if not len(batch):
            return WriteResult(0, 0, 0, dupes)
        now_us = time_us(self.clock.now(), "now")
        appended = 0 if points is None else len(points)
        if points is None or self.dialect == "postgresql":
            then = None if points is None else lambda: self._segment_statements(points, history)
            merged = False
            try:
                with self._write() as conn:
                    # PostgreSQL: the segment is built and sent while the server applies the
                    # upsert (``Bulk.upsert_scores``), in the same transaction and round trip
                    merged = self._bulk.can_merge(conn)
                    written = self._bulk.upsert_scores(conn, batch, now_us, then)
            except IntegrityError:
                if not merged:
                    raise
                # MERGE met a user another writer inserted meanwhile (it does not wait that
                # out as ON CONFLICT does); the whole write was rolled back: again, with it
                log.info("score upsert met a concurrent insert of a new user; retrying with ON CONFLICT")
                with self._write() as conn:
                    written = self._bulk.upsert_scores(conn, batch, now_us, then, merge=False)
        else:  # SQLite: built before the write lock is taken, to hold it for less time
            segment = self._segment(points, history)
            with self._write() as conn:
                written = self._bulk.upsert_scores(conn, batch, now_us)
                self._append_segment(conn, segment)
        if points is not None:
            self._after_history_write()
        return WriteResult(written, appended, len(batch) - written, dupes)

    def append_score_history(
        self,
        rows: pd.DataFrame | ScoreColumns | Sequence[ScoreRow] | Sequence[Mapping[str, Any]],
        *,
        history: HistoryPolicy = DEFAULT_HISTORY,
    ) -> int:
        """Write history points only (current scores untouched), by the same rule as
        :meth:`upsert_scores`. Returns the points written (each (user, interval) once)."""
        every = validate_scores(rows)
        if not len(every):
            return 0
        segment = self._segment(PointRows.of(latest(every, history.bucket_us(every.features_time))), history)
        with self._write() as conn:
            appended = self._append_segment(conn, segment)
        self._after_history_write()
        return appended

    def _segment(self, p: PointRows, history: HistoryPolicy) -> dict[str, Any]:
        """One ``score_history_segments`` row holding ``p``'s points (each (user,
        interval) once: rows of :func:`latest`, by user)."""
        users = p.users
        t = p.features_time.view("int64")
        b = history.bucket_us(p.features_time).view("int64")
        versions = np.empty(len(p), dtype=object)
        versions[:] = p.model_version
        return segments.row(segments.Points(users, b, t, p.risk, versions), self.codec)

    def _lock_history(self, conn: Connection) -> None:
        """PostgreSQL: serialise history writers until commit, so ``seq`` order (the
        tie-break of equal times) is commit order. SQLite's write lock already does."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql(*self._history_lock())

    def _history_lock(self) -> Statement:
        return "SELECT pg_advisory_xact_lock(hashtext(%(k)s))", {"k": f"churn-history:{self.schema or ''}"}

    def _segment_statements(self, points: PointRows, history: HistoryPolicy) -> list[Statement]:
        """PostgreSQL, driver level: the history lock and the insert of ``points``' segment
        (what :meth:`_append_segment` runs through SQLAlchemy, the same statement compiled
        for the driver: its SQL comes from the one table definition)."""
        row = self._segment(points, history)
        names = tuple(row)

        def compile_insert() -> str:
            schema = {"schema_translate_map": {None: self.schema}, "render_schema_translate": True}
            return str(s.score_history_segments.insert().inline().compile(  # inline: no RETURNING
                dialect=self.engine.dialect, column_keys=list(names), **(schema if self.schema else {})
            ))  # fmt: skip

        return [self._history_lock(), (self._bulk.cached(("segment", names), compile_insert), row)]

    def _append_segment(self, conn: Connection, segment: dict[str, Any]) -> int:
        self._lock_history(conn)
        conn.execute(s.score_history_segments.insert(), [segment])
        return int(segment["points"])

    # -- metrics and decisions -----------------------------------------------------------
    def record_metrics(self, rows: Iterable[StreamMetric]) -> int:
        """Append metric ticks; re-recording the same (time, worker, partition) is a no-op."""
        params = []
        for r in rows:
            if not isinstance(r, StreamMetric):
                raise InvalidRowError(
                    f"record_metrics takes StreamMetric rows, got {type(r).__name__}"
                )
            v = r.values()
            v["time"] = self.codec.one(r.time)
            params.append(v)
        if params:
            with self._write() as conn:
                stmt = self._upsert(s.stream_metrics, ("time", "worker", "partition"), ())
                conn.execute(stmt, params)
        return len(params)

    def record_decision(
        self,
        *,
        time: datetime,
        current: int,
        desired: int,
        action: str,
        reason: str,
        recommended: int | None = None,
        total_lag: int | None = None,
    ) -> None:
        """Record one autoscaler decision (idempotent on ``time``)."""
        if min(current, desired) < 0 or (recommended is not None and recommended < 0):
            raise InvalidRowError(
                f"decision counts must be >= 0 (current={current}, desired={desired}, "
                f"recommended={recommended})"
            )
        row = {
            "time": self.codec.one(check_time(time, "decision time")),
            "current": int(current), "desired": int(desired), "action": str(action),
            "reason": str(reason), "recommended": None if recommended is None else int(recommended),
            "total_lag": None if total_lag is None else int(total_lag),
        }  # fmt: skip
        with self._write() as conn:
            conn.execute(self._upsert(s.autoscale_decisions, ("time",), ()), [row])

    # -- housekeeping --------------------------------------------------------------------
    def prune(self, before: datetime) -> dict[str, int]:
        """Delete history points, metrics and decisions older than ``before``.

        ``score_history`` counts the points the readers no longer return (a point whose
        every written version is older than ``before``); segments holding only such
        versions are deleted, the others rewritten without them (same ``seq``)."""
        t = self.codec.one(check_time(before, "prune before"))
        cut = time_us(before, "prune before")  # history segments hold int64 microseconds
        out = {}
        with self._write() as conn:
            self._lock_history(conn)
            out["score_history"] = self._prune_history(conn, cut)
            for table in (s.stream_metrics, s.autoscale_decisions):
                out[table.name] = conn.execute(delete(table).where(table.c.time < t)).rowcount
        return out

    def _prune_history(self, conn: Connection, cut: int) -> int:
        # Every version of a point older than ``cut`` lies in a bucket before it, and so
        # do the other versions of that point: these segments hold all of them.
        pts, seq, _ = self._history_points(conn, bucket_before_us=cut)  # unreadable: kept
        if not len(pts):
            return 0
        gone = int((pts.times[segments.newest(pts, seq)] < cut).sum())
        segs = s.score_history_segments
        for q in np.unique(seq[pts.times < cut]).tolist():
            keep = pts.take((seq == q) & (pts.times >= cut))
            where = segs.c.seq == q
            if not len(keep):
                conn.execute(delete(segs).where(where))
                continue
            row = segments.row(keep, self.codec)
            conn.execute(segs.update().where(where).values(**row))
        return gone

    def compact_history(self, *, segment_points: int = 20_000, recent_only: bool = False) -> dict[str, int]:
        """Merge history segments into as few as possible, holding the resolved points
        only (superseded versions and replayed duplicates dropped), by (user, bucket) in
        segments of at most ``segment_points`` (so each covers a narrow range of users: a
        one-user read decodes one per run, plus the flush segments written since). Reads
        return the same before and after; they get faster, as a store written by many
        small flushes holds many segments.

        ``recent_only``: merge only the flush segments (those no run has merged yet: the
        newest ones) into a new run, leaving older runs as they are -- a cost in proportion
        to the points written since the last compaction, not to the whole history. Without
        it every segment is merged into one run. Returns ``{"segments": merged, "points":
        merged, "segments_after": ..., "points_after": ..., "run": ...}``. One write
        transaction (writers wait for it). Writers call this themselves
        (:meth:`maybe_compact_history`)."""
        if not (isinstance(segment_points, int) and segment_points >= 1):
            raise InvalidRowError(f"compact_history segment_points={segment_points!r}: use an int >= 1")
        segs = s.score_history_segments
        with self._write() as conn:
            self._lock_history(conn)
            pts, seq, unreadable = self._history_points(conn, flush_only=recent_only)
            n_segs = len(np.unique(seq))
            run = int(conn.execute(select(func.coalesce(func.max(segs.c.run), 0))).scalar_one()) + 1
            kept = pts.take(segments.newest(pts, seq))
            kept = kept.take(np.lexsort((kept.buckets, kept.users)))  # by user: narrow ranges
            # Everything the read covered, except a segment it could not decode: that one
            # stays (reads skip it and say so) rather than be lost unread.
            merged = delete(segs).where(segs.c.run.is_(None)) if recent_only else delete(segs)
            conn.execute(merged.where(segs.c.seq.not_in(unreadable)) if unreadable else merged)
            rows = [segments.row(kept.take(np.arange(lo, min(lo + segment_points, len(kept)))),
                                 self.codec) | {"run": run}
                    for lo in range(0, len(kept), segment_points)]  # fmt: skip
            if rows:
                conn.execute(segs.insert(), rows)
        return {"segments": n_segs, "points": len(pts), "segments_after": len(rows),
                "points_after": len(kept), "run": run, "unreadable": len(unreadable)}  # fmt: skip

    def maybe_compact_history(self) -> dict[str, int] | None:
        """The writers' compaction policy (called every ``history_compact_after // 4``
        history writes of this Store): once ``history_compact_after`` flush segments have
        piled up, merge them into a new run (:meth:`compact_history` ``recent_only``);
        once ``history_max_runs`` runs exist, merge everything into one. A one-user read
        then decodes at most ``history_max_runs`` + ``history_compact_after`` segments,
        however long the store has run. None: nothing to do yet."""
        segs = s.score_history_segments
        with self._read() as conn:
            flushes, runs = conn.execute(select(
                func.count().filter(segs.c.run.is_(None)), func.count(func.distinct(segs.c.run)))).one()
        if int(flushes) < self.history_compact_after:
            return None
        return self.compact_history(recent_only=int(runs) < self.history_max_runs)

    def _after_history_write(self) -> None:
        """Compaction is housekeeping: a failure is logged (reads stay correct, only
        slower) and never fails the write, which has committed."""
        if not self.history_compact_after:
            return
        self._history_writes += 1
        if self._history_writes < max(1, self.history_compact_after // 4):
            return
        self._history_writes = 0
        try:
            done = self.maybe_compact_history()
        except (StoreError, OperationalError) as exc:
            log.warning("store %s: score history compaction failed, will retry (reads stay correct, only "
                        "slower): %s", self.url, exc)
            return
        if done is not None:
            log.info("store %s: score history: %d segments (%d points) merged into run %d (%d segments, %d points)",
                     self.url, done["segments"], done["points"], done["run"], done["segments_after"],
                     done["points_after"])
