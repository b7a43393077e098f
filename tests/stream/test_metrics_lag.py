"""Lag in seconds is wall-clock time since the oldest unprocessed record was appended,
not the events' own timestamps (a producer replaying simulated days in seconds must not
make a consumer a few records behind look hours late)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.events import Session, encode
from pipeline.log.memory import MemoryLog
from pipeline.stream.metrics import LogEndHistory, StreamMetrics

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _events(start: int, n: int, spacing: timedelta) -> list[bytes]:
    return [
        encode(Session(event_id=f"e{i}", user_id="u1", ts=T0 + i * spacing, schema_version=1,
                       watch_minutes=10.0, device="tv"))
        for i in range(start, start + n)
    ]  # fmt: skip


def test_compressed_event_time_does_not_inflate_lag_seconds() -> None:
    log = MemoryLog("t", 1)
    log.append(0, _events(0, 100, timedelta(hours=1)))  # 100 simulated hours
    m = StreamMetrics("w0", started=0.0)
    (row,) = m.tick(T0, 10.0, log, "g", {0: 100}, {0: 100}, "1")  # caught up
    assert row.lag == 0 and row.lag_seconds == 0.0
    log.append(0, _events(100, 100, timedelta(hours=1)))  # 100 more simulated hours, 5 s wall
    (row,) = m.tick(T0, 15.0, log, "g", {0: 190}, {0: 190}, "1")
    # offset 190 was appended ~4.5 s into that 5 s interval: ~0.5 s ago, not 10 simulated hours
    assert row.lag == 10
    assert 0.0 <= row.lag_seconds <= 5.0


def test_a_backlog_older_than_the_workers_observations_falls_back_to_event_time() -> None:
    log = MemoryLog("t", 1)
    log.append(0, _events(0, 100, timedelta(hours=1)))
    m = StreamMetrics("w0", started=0.0)
    (row,) = m.tick(T0, 10.0, log, "g", {0: 0}, {}, "1")  # nothing processed yet
    assert row.lag == 100
    assert row.lag_seconds == 99 * 3600.0  # first to last event of the backlog


def test_history_interpolates_and_restarts_after_truncation() -> None:
    h = LogEndHistory(maxlen=3)
    for t, end in [(0.0, 0), (10.0, 100), (20.0, 300)]:
        h.observe(t, end)
    assert h.lag_seconds(50, now=20.0) == 20.0 - 5.1  # offset 50 appended at 5.1 s
    assert h.lag_seconds(299, now=21.0) == 1.0
    h.observe(30.0, 400)  # maxlen: (0, 0) drops out
    assert h.lag_seconds(50, now=30.0) is None
    h.observe(40.0, 10)  # the log was recreated
    assert h.lag_seconds(5, now=40.0) is None and h.lag_seconds(10, now=40.0) == 0.0
