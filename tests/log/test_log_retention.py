"""Retention deletes whole old segments, never the active one or unconsumed records."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.clock import FakeClock
from pipeline.errors import ConfigError, OffsetOutOfRangeError
from pipeline.log import FileLog, RetentionPolicy, apply_retention

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = 3600.0


def hourly_log(file_log, make_event, hours: int = 6, per_hour: int = 20) -> FileLog:
    """One partition; each append is one hour of events and fills one segment."""
    log = file_log(1, segment_bytes=per_hour * 100)
    for h in range(hours):
        batch = [
            make_event(h * per_hour + i, ts=T0 + timedelta(hours=h, seconds=i))
            for i in range(per_hour)
        ]
        log.append(0, batch)
    assert len(log.segments(0)) == hours
    return log


def test_age_retention_deletes_old_segments_and_moves_start(file_log, make_event):
    log = hourly_log(file_log, make_event)
    clock = FakeClock(T0 + timedelta(hours=5, minutes=30))
    deleted = apply_retention(log, RetentionPolicy(max_age_s=2.5 * HOUR), clock)
    # newest events: 00:00:19, 01:00:19, 02:00:19, ... -> older than 2.5h: hours 0, 1, 2
    assert [(d.base_offset, d.end_offset, d.reason) for d in deleted] == [
        (0, 20, "age"),
        (20, 40, "age"),
        (40, 60, "age"),
    ]
    assert deleted[0].newest == T0 + timedelta(seconds=19)
    assert log.start_offset(0) == 60 and log.end_offset(0) == 120
    with pytest.raises(OffsetOutOfRangeError, match="below its start offset 60"):
        log.fetch(0, 10)
    assert log.fetch(0, 60, max_records=1)[0].offset == 60
    clock.advance(10 * 24 * HOUR)  # everything is old now, but the active segment stays
    apply_retention(log, RetentionPolicy(max_age_s=HOUR), clock)
    assert len(log.segments(0)) == 1 and log.end_offset(0) == 120


def test_uncommitted_records_are_kept_unless_allowed(file_log, make_event):
    log = hourly_log(file_log, make_event)
    clock = FakeClock(T0 + timedelta(days=30))
    log.commit("fast", {0: 120}, clock.now())
    log.commit("slow", {0: 45}, clock.now())  # still needs offsets 45..
    deleted = apply_retention(log, RetentionPolicy(max_age_s=HOUR), clock)
    assert [d.base_offset for d in deleted] == [0, 20]  # [40, 60) holds offset 45
    assert apply_retention(log, RetentionPolicy(max_age_s=HOUR, allow_uncommitted=True), clock)
    assert log.start_offset(0) == 100


def test_a_group_that_never_committed_the_partition_blocks_it(file_log, make_event):
    log = hourly_log(file_log, make_event, hours=3)
    clock = FakeClock(T0 + timedelta(days=30))
    log.reset_offsets("new", to="earliest")  # a group positioned at the start
    assert apply_retention(log, RetentionPolicy(max_age_s=HOUR), clock) == []


def test_size_retention_keeps_partition_under_the_limit(file_log, make_event):
    log = hourly_log(file_log, make_event)
    sizes = [s.bytes for s in log.segments(0)]
    limit = sum(sizes[-2:]) + 1
    deleted = apply_retention(log, RetentionPolicy(max_bytes=limit), FakeClock(T0))
    assert [d.reason for d in deleted] == ["size"] * 4
    assert sum(s.bytes for s in log.segments(0)) <= limit
    assert log.start_offset(0) == 80


def test_mtime_is_the_fallback_for_segments_without_event_times(file_log):
    log = file_log(1, segment_bytes=200)
    for i in range(6):
        log.append(0, [f'{{"n":{i}}}'.encode()] * 10)
    old = (T0 - timedelta(days=2)).timestamp()
    segs = log.segments(0)
    assert len(segs) == 3
    for seg in segs[:2]:
        os.utime(seg.path, (old, old))
    deleted = apply_retention(log, RetentionPolicy(max_age_s=24 * HOUR), FakeClock(T0))
    assert [d.base_offset for d in deleted] == [s.base for s in segs[:2]]
    assert deleted[0].newest == datetime.fromtimestamp(old, UTC)


def test_policy_validation_and_noop():
    with pytest.raises(ConfigError, match="max_age_s"):
        RetentionPolicy(max_age_s=0)
    with pytest.raises(ConfigError, match="max_bytes"):
        RetentionPolicy(max_bytes=-1)
    p = RetentionPolicy.from_mapping({"retention_hours": 2, "retention_bytes": None})
    assert p.max_age_s == 2 * HOUR and p.max_bytes is None and not p.allow_uncommitted
    assert apply_retention(None, RetentionPolicy(), FakeClock()) == []  # type: ignore[arg-type]
