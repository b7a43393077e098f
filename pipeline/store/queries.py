"""Read side of the store: plain DataFrames for the dashboard (times are UTC-aware).

Everything here reads only: the dashboard opens the same URL and never writes.

"Current scores" are those of **active subscribers**: a user who cancelled keeps a row
(``active`` false) and its history, but is not counted at risk, in the histogram, the
top users or the revenue at risk (``current_scores(active_only=False)`` shows them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Select, and_, case, func, select

from pipeline.errors import InvalidRowError, StoreError
from pipeline.store import schema as s
from pipeline.store import segments
from pipeline.store.records import ScoreSummary
from pipeline.store.rows import TimeCodec, check_time, time_us

SCORE_COLUMNS = ("user_id", "risk", "model_version", "features_time", "reasons", "plan",
                 "monthly_revenue", "partition", "updated_at", "active")  # fmt: skip
MAX_BINS = 200
log = logging.getLogger("pipeline.store")
_WARNED: set[tuple[Any, ...]] = set()  # unreadable history segments already logged (store, seq)


class Readers:
    """Mixin of :class:`pipeline.store.Store` (needs ``codec``, ``clock`` and ``_read``)."""

    codec: TimeCodec
    clock: Any
    url: str
    _bulk: Any  # pipeline.store.bulk.Bulk: quoted table names

    def _read(self) -> AbstractContextManager[Connection]:  # provided by Store
        raise NotImplementedError

    def _frame(self, query: Select, times: Sequence[str] = ()) -> pd.DataFrame:
        with self._read() as conn:
            res = conn.execute(query)
            df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        for c in times:
            if c in df.columns:
                df[c] = self.codec.decode(df[c])
        return df

    def _since(self, since: datetime | None, what: str) -> Any:
        return None if since is None else self.codec.one(check_time(since, what))

    # -- scores --------------------------------------------------------------------------
    def current_scores(
        self, top_k: int | None = 100, *, min_risk: float = 0.0, active_only: bool = True
    ) -> pd.DataFrame:
        """The highest-risk users first (``top_k=None``: all), risk >= ``min_risk``; only
        active subscribers unless ``active_only=False`` (then cancelled users too, with
        ``active`` false)."""
        c = s.scores.c
        q = (
            select(*(c[k] for k in SCORE_COLUMNS))
            .where(c.risk >= float(min_risk))
            .order_by(c.risk.desc(), c.user_id)
        )
        if active_only:
            q = q.where(c.active.is_(True))
        if top_k is not None:
            q = q.limit(int(top_k))
        return self._frame(q, ("features_time", "updated_at"))

    def holds_scores(self, partition: int) -> bool:
        """Whether the store holds a score of any user of log ``partition`` (cancelled ones
        too): a stream checkpoint that remembers scoring users there expects some."""
        c = s.scores.c
        with self._read() as conn:
            row = conn.execute(select(c.user_id).where(c.partition == int(partition)).limit(1)).first()
        return row is not None

    def score_summary(self, high_risk: float = 0.5) -> ScoreSummary:
        """Active users scored, how many at risk >= ``high_risk``, revenue at risk; users
        who cancelled are counted apart (``churned_users``)."""
        c = s.scores.c
        on = c.active.is_(True)
        hi = and_(on, c.risk >= float(high_risk))
        revenue = func.coalesce(c.monthly_revenue, 0.0)
        q = select(
            func.sum(case((on, 1), else_=0)),
            func.sum(case((hi, 1), else_=0)),
            func.avg(case((on, c.risk), else_=None)),
            func.sum(case((on, c.risk * revenue), else_=0.0)),
            func.sum(case((hi, revenue), else_=0.0)),
            func.max(c.features_time),
            func.count(),
        )
        with self._read() as conn:
            n, n_hi, mean, loss, hi_rev, newest, n_all = conn.execute(q).one()
            versions = conn.execute(select(c.model_version).distinct().order_by(c.model_version))
            models = tuple(r[0] for r in versions)
        newest_t = (
            None if newest is None else self.codec.decode(pd.Series([newest]))[0].to_pydatetime()
        )
        return ScoreSummary(
            users=int(n or 0),
            high_risk_users=int(n_hi or 0),
            mean_risk=None if mean is None else float(mean),
            expected_monthly_loss=float(loss or 0.0),
            high_risk_monthly_revenue=float(hi_rev or 0.0),
            features_time=newest_t,
            model_versions=models,
            churned_users=int(n_all) - int(n or 0),
        )

    def risk_at_rank(self, rank: int) -> float | None:
        """The risk of the ``rank``-th riskiest active user (1 = the riskiest), None if fewer
        users are scored: the threshold of a "top k %" high-risk rule (pipeline.highrisk)."""
        if not (isinstance(rank, int) and rank >= 1):
            raise InvalidRowError(f"risk_at_rank rank={rank!r}: use an int >= 1")
        c = s.scores.c
        q = select(c.risk).where(c.active.is_(True)).order_by(c.risk.desc()).limit(1).offset(rank - 1)
        with self._read() as conn:
            row = conn.execute(q).first()
        return None if row is None else float(row[0])

    def risk_histogram(self, bins: int = 20) -> pd.DataFrame:
        """Active users per risk bin: columns ``bin_start``, ``bin_end``, ``users`` (``bins``
        rows; the last bin includes 1.0). One scan, computed in the database."""
        if not (isinstance(bins, int) and 1 <= bins <= MAX_BINS):
            raise InvalidRowError(f"risk_histogram bins={bins!r}: use an int in [1, {MAX_BINS}]")
        edges = np.linspace(0.0, 1.0, bins + 1)
        r = s.scores.c.risk
        cols = []
        for i in range(bins):
            upper = r <= edges[i + 1] if i == bins - 1 else r < edges[i + 1]
            inside = and_(s.scores.c.active.is_(True), r >= edges[i], upper)
            cols.append(func.sum(case((inside, 1), else_=0)).label(f"b{i}"))
        with self._read() as conn:
            counts = conn.execute(select(*cols)).one()
        return pd.DataFrame(
            {"bin_start": edges[:-1], "bin_end": edges[1:], "users": [int(x or 0) for x in counts]}
        )

    def score_history(
        self, user_ids: Sequence[str] | None = None, *, since: datetime | None = None
    ) -> pd.DataFrame:
        """Sampled risk points (``user_id``, ``time``, ``risk``, ``model_version``), by time
        then user: per user and interval the newest score written (see
        :mod:`pipeline.store.segments`); ``user_ids``: only theirs; ``since``: points at or
        after it."""
        since_us = None if since is None else time_us(since, "since")
        wanted = None if user_ids is None else list(user_ids)
        with self._read() as conn:
            pts, seq, unreadable = self._history_points(conn, since_us=since_us, users=wanted)
        kept = segments.resolve(pts, seq)
        if since_us is not None:
            kept = kept.take(kept.times >= since_us)
        users = kept.users.astype(str).tolist() if kept.users.dtype.kind == "S" else kept.users.tolist()
        if not users:
            df = pd.DataFrame(
                {"user_id": pd.Series([], dtype=object), "time": pd.Series([], dtype="datetime64[us, UTC]"),
                 "risk": pd.Series([], dtype=object), "model_version": pd.Series([], dtype=object)}
            )  # fmt: skip
        else:
            df = pd.DataFrame({
                "user_id": users,
                "time": pd.Series(np.asarray(kept.times, "int64").view("datetime64[us]")).dt.tz_localize(UTC),
                "risk": np.array(kept.risks, dtype=np.float64),
                "model_version": kept.versions.tolist(),
            })  # fmt: skip
        # segments this read had to skip (``_history_points``): the caller can say so
        df.attrs["unreadable_segments"] = unreadable
        return df

    def _history_points(
        self,
        conn: Connection,
        *,
        since_us: int | None = None,
        bucket_before_us: int | None = None,
        users: Sequence[str] | None = None,
        flush_only: bool = False,
    ) -> tuple[segments.Points, np.ndarray, list[int]]:
        """Every stored history point version (all segments, or those that may hold a
        point at/after ``since_us`` or in a bucket before ``bucket_before_us``), of
        ``users`` only if given (``flush_only``: of the segments written by flushes, not
        yet merged by a compaction run), each point's segment ``seq``, and the ``seq`` of
        the segments that could not be decoded (skipped, logged)."""
        pg = conn.dialect.name == "postgresql"
        mark = "%s" if pg else "?"
        where: list[str] = []
        params: list[Any] = []

        def bound(us: int) -> Any:
            return self.codec.many(np.array([us], "datetime64[us]"))[0]

        if since_us is not None:
            where.append(f"time_max >= {mark}")
            params.append(bound(since_us))
        if bucket_before_us is not None:
            where.append(f"bucket_min < {mark}")
            params.append(bound(bucket_before_us))
        if flush_only:  # the segments no compaction run has merged yet
            where.append("run IS NULL")
        if users:
            # code-point order, as the bounds are stored (PostgreSQL: whatever the collation)
            collate = ' COLLATE "C"' if pg else ""
            where.append(f"user_max{collate} >= {mark} AND user_min{collate} <= {mark}")
            params += [min(users), max(users)]
        sql = f"SELECT seq, payload FROM {self._bulk.table(s.score_history_segments)}"
        sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq"
        if pg:  # binary results: bytea as raw bytes, not hex text (~3x faster to fetch)
            with conn.connection.driver_connection.cursor(binary=True) as cur:
                rows = cur.execute(sql, params).fetchall()
        else:
            rows = conn.exec_driver_sql(sql, tuple(params)).all()
        parts, seqs = [], []
        unreadable: list[int] = []
        for seq, payload in rows:
            try:
                p = segments.decode(payload)
            except StoreError as exc:
                # One damaged segment (a torn page, a bad restore) must not take every
                # chart down: its points are skipped, the rest read. Said where the user
                # looks: logged (once per segment) and on the reader's result; compaction
                # and prune keep it (they write only what they read).
                unreadable.append(int(seq))
                key = (self.url, getattr(self, "schema", None), int(seq))
                if key not in _WARNED:
                    _WARNED.add(key)
                    log.error("store %s: score history segment seq=%d is unreadable, its points are "
                              "skipped by every read (kept in the store, not compacted away): %s",
                              self.url, int(seq), exc)
                continue
            if users is not None:
                p = p.take(segments.isin(p.users, users))
            if len(p):
                parts.append(p)
                seqs.append(int(seq))
        return (*segments.concat(parts, seqs), unreadable)

    # -- stream ----------------------------------------------------------------------------
    def metrics_since(self, since: datetime | None = None) -> pd.DataFrame:
        """Metric ticks at or after ``since`` (all if None), by time then partition."""
        c = s.stream_metrics.c
        q = select(s.stream_metrics).order_by(c.time, c.partition, c.worker)
        if since is not None:
            q = q.where(c.time >= self._since(since, "since"))
        return self._frame(q, ("time",))

    def latest_metrics(self) -> pd.DataFrame:
        """The newest tick of every partition (the dashboard's current lag per partition)."""
        m = s.stream_metrics
        newest = (
            select(m.c.partition, func.max(m.c.time).label("t")).group_by(m.c.partition).subquery()
        )
        q = (
            select(m)
            .join(newest, and_(m.c.partition == newest.c.partition, m.c.time == newest.c.t))
            .order_by(m.c.partition, m.c.worker)
        )
        return self._frame(q, ("time",))

    def decisions_since(self, since: datetime | None = None) -> pd.DataFrame:
        c = s.autoscale_decisions.c
        q = select(s.autoscale_decisions).order_by(c.time)
        if since is not None:
            q = q.where(c.time >= self._since(since, "since"))
        return self._frame(q, ("time",))

    def assignments(self) -> pd.DataFrame:
        """One row per worker: ``partitions`` (tuple), pid, host, generation, times, and
        ``heartbeat_age_s`` (by the store's clock)."""
        w, o = s.workers, s.partition_owners
        workers = self._frame(select(w).order_by(w.c.worker_id), ("started_at", "heartbeat_at"))
        owners = self._frame(select(o.c.worker_id, o.c.partition).order_by(o.c.partition))
        by_worker: dict[str, list[int]] = {}
        for wid, p in owners.itertuples(index=False):
            by_worker.setdefault(wid, []).append(int(p))
        workers.insert(1, "partitions", [tuple(by_worker.get(x, ())) for x in workers["worker_id"]])
        now = pd.Timestamp(self.clock.now())
        workers["heartbeat_age_s"] = (now - workers["heartbeat_at"]).dt.total_seconds()
        return workers
