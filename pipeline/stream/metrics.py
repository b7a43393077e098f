"""Per-partition stream metrics, turned into ``StreamMetric`` rows at a fixed cadence.

Batch latency is the wall time of a batch's own work, fetch to rows handed to the store
writer; time blocked because the writer is behind (backpressure) is not latency of the
batch but a throughput limit, and shows as lag.

Each tick writes one row per owned partition: committed (checkpointed) offset, log-end
offset, lag in records (log end minus the worker's position) and in seconds, the Burrow status over the group's recent commits, events and dead letters since the
previous tick, events/s, batch latency p50/p95/p99 and the model version. Totals per
worker and for the whole group are sums over the rows of one tick.

Lag in seconds is wall-clock time, as an operator means it: how long ago the oldest
record the worker has not processed was appended. It is interpolated from the log-end
offsets the worker saw at its previous ticks (kafka-lag-exporter's method), so it does not
depend on the events' own timestamps -- a producer replaying simulated days in seconds
does not make a consumer 90 records behind look "12 minutes late". A position older than
the worker's first observation (a backlog at start, a partition just taken over) falls
back to the event-time gap between that record and the log end, the best estimate there
is without the append times.

>>> h = LogEndHistory()
>>> h.observe(100.0, 1_000); h.observe(110.0, 2_000)
>>> h.lag_seconds(1_500, now=112.0)   # offset 1,500 was appended ~105.0
6.99
>>> h.lag_seconds(2_000, now=112.0), h.lag_seconds(900, now=112.0)
(0.0, None)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from pipeline.log.base import PartitionLog
from pipeline.log.lag import evaluate_status, lag_seconds
from pipeline.store.records import StreamMetric

KEEP_LATENCIES = 100_000  # whole-run latencies kept for summaries (the last ones)


@dataclass
class _Window:
    events: int = 0
    dead: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def percentiles(
    values_ms: list[float] | deque[float] | np.ndarray,
) -> tuple[float, float, float] | None:
    if len(values_ms) == 0:
        return None
    p50, p95, p99 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 95, 99])
    return float(p50), float(p95), float(p99)


class LogEndHistory:
    """(wall seconds, log-end offset) of one partition at recent ticks (about an hour)."""

    def __init__(self, maxlen: int = 720) -> None:
        self.points: deque[tuple[float, int]] = deque(maxlen=maxlen)

    def observe(self, now: float, end: int) -> None:
        if self.points and end < self.points[-1][1]:
            self.points.clear()  # the log was truncated or recreated: start over
        self.points.append((now, end))

    def lag_seconds(self, position: int, now: float) -> float | None:
        """Wall seconds since offset ``position`` was appended; 0.0 if it was not yet;
        None if it was appended before the first observation."""
        pts = self.points
        if not pts or position >= pts[-1][1]:
            return 0.0
        if position < pts[0][1]:
            return None
        # the first observation whose log end is past `position` (ends never decrease)
        lo, hi = 0, len(pts) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if pts[mid][1] > position:
                hi = mid
            else:
                lo = mid + 1
        t1, e1 = pts[lo]
        t0, e0 = pts[lo - 1]  # lo >= 1: pts[0][1] <= position
        appended = t0 + (t1 - t0) * (position + 1 - e0) / (e1 - e0)
        return round(max(now - appended, 0.0), 3)


class StreamMetrics:
    """Counts batches as they happen; :meth:`tick` turns the window into rows."""

    def __init__(self, worker: str, started: float) -> None:
        self.worker = worker
        self._window: dict[int, _Window] = {}
        self._ends: dict[int, LogEndHistory] = {}  # per owned partition: for lag in seconds
        self._since = started  # monotonic time of the previous tick
        self.events = 0
        self.dead = 0
        self.duplicates = 0  # duplicate event ids dropped (pipeline.stream.admission)
        self.batches = 0
        self.latencies_ms: deque[float] = deque(maxlen=KEEP_LATENCIES)

    def batch(self, partition: int, events: int, dead: int, seconds: float, duplicates: int = 0) -> None:
        w = self._window.setdefault(partition, _Window())
        self.duplicates += duplicates
        ms = seconds * 1000.0
        w.events += events
        w.dead += dead
        w.latencies_ms.append(ms)
        self.events += events
        self.dead += dead
        self.batches += 1
        self.latencies_ms.append(ms)

    def tick(
        self,
        now: datetime,
        mono: float,
        log: PartitionLog,
        group: str,
        positions: dict[int, int],
        committed: dict[int, int],
        model_version: str | None,
    ) -> list[StreamMetric]:
        """Rows for ``positions`` (partition -> next offset to process), then reset."""
        elapsed = max(mono - self._since, 1e-9)
        self._since = mono
        history = log.commit_history(group) if positions else {}
        rows = []
        for p, pos in sorted(positions.items()):
            w = self._window.pop(p, _Window())
            info = log.partition_info(p)
            lag = max(info.end_offset - pos, 0)
            ends = self._ends.setdefault(p, LogEndHistory())
            ends.observe(mono, info.end_offset)
            behind_s = ends.lag_seconds(pos, mono)
            if behind_s is None:  # older than what this worker has seen: event-time gap
                behind_s = lag_seconds(log, p, pos, info.start_offset, info.end_offset)
            pct = percentiles(w.latencies_ms)
            rows.append(StreamMetric(
                time=now, worker=self.worker, partition=p,
                committed_offset=committed.get(p), log_end_offset=info.end_offset, lag=lag,
                lag_seconds=behind_s,
                status=evaluate_status(history.get(p, [])[-10:], lag, now).value,
                events=w.events, events_per_s=w.events / elapsed,
                batch_p50_ms=pct[0] if pct else None, batch_p95_ms=pct[1] if pct else None,
                batch_p99_ms=pct[2] if pct else None, dead_letters=w.dead, model_version=model_version,
            ))  # fmt: skip
        self._window.clear()  # partitions handed over since the last tick
        for p in [p for p in self._ends if p not in positions]:
            del self._ends[p]  # handed over: a later owner starts its own history
        return rows
