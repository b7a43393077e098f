"""Lag (Kafka's definition), lag in seconds (event time) and Burrow's status rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.log import (
    LAG_HEADERS,
    CommitEntry,
    Status,
    describe_group,
    describe_rows,
    evaluate_status,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window(*rows: tuple[int, int, int]) -> list[CommitEntry]:
    """Burrow-style fixture rows: (offset, timestamp seconds, lag at commit)."""
    return [CommitEntry(EPOCH + timedelta(seconds=t), off, off + lag) for off, t, lag in rows]


ADVANCING_WITH_ZERO = window(
    (1000, 100, 0), (2000, 200, 50), (3000, 300, 100), (4000, 400, 150), (5000, 500, 200)
)
ADVANCING_GROWING = window(
    (1000, 100, 50), (2000, 200, 100), (3000, 300, 150), (4000, 400, 200), (5000, 500, 250)
)
STUCK_WITH_ZERO = window(
    (1000, 100, 0), (1000, 200, 50), (1000, 300, 100), (1000, 400, 150), (1000, 500, 200)
)
STUCK = window(
    (1000, 100, 100), (1000, 200, 150), (1000, 300, 200), (1000, 400, 250), (1000, 500, 300)
)
STUCK_FLAT = window(
    (1000, 100, 100), (1000, 200, 100), (1000, 300, 100), (1000, 400, 100), (1000, 500, 100)
)
REWOUND = window(
    (1000, 100, 100), (2000, 200, 150), (3000, 300, 200), (2000, 400, 1250), (4000, 500, 300)
)
CATCHING_UP = window(
    (1000, 100, 300), (2000, 200, 250), (3000, 300, 200), (4000, 400, 150), (5000, 500, 100)
)


# The cases of linkedin/Burrow core/internal/evaluator/caching_test.go (tests 0-8), whose
# rules caching.go implements; min_stop_s=0 gives Burrow's exact STOP rule.
@pytest.mark.parametrize(
    ("history", "current_lag", "now_s", "expected"),
    [
        (ADVANCING_WITH_ZERO, 200, 600, Status.OK),  # 0: zero lag inside the window
        (ADVANCING_WITH_ZERO, 200, 900, Status.OK),  # 1: 400s idle == 400s span: not yet
        (ADVANCING_WITH_ZERO, 200, 1000, Status.STOP),  # 2: idle longer than the span
        (ADVANCING_GROWING, 250, 1000, Status.STOP),  # 3
        (STUCK_WITH_ZERO, 200, 600, Status.OK),  # 4
        (STUCK, 300, 600, Status.STALL),  # 5
        (STUCK_FLAT, 100, 600, Status.STALL),  # 6
        (REWOUND, 300, 600, Status.REWIND),  # 7: rewind beats the rest
        (ADVANCING_GROWING, 0, 1000, Status.OK),  # 8: no current lag, never an error
        (ADVANCING_GROWING, 250, 600, Status.WARN),  # offsets move, lag never shrinks
        (CATCHING_UP, 100, 600, Status.OK),
    ],
)
def test_burrow_rules(history, current_lag, now_s, expected):
    now = EPOCH + timedelta(seconds=now_s)
    assert evaluate_status(history, current_lag, now, min_stop_s=0) == expected


def test_status_needs_two_commits_for_trends_and_min_stop_delays_stop():
    one = window((10, 100, 5))
    assert evaluate_status(one, 5, EPOCH + timedelta(seconds=130), min_stop_s=60) == Status.OK
    assert evaluate_status(one, 5, EPOCH + timedelta(seconds=161), min_stop_s=60) == Status.STOP
    assert evaluate_status([], 5, EPOCH) == Status.OK  # never committed: nothing to judge


def test_describe_group_lag_seconds_and_status_over_time(make_log, make_event, clock):
    log = make_log(num_partitions=2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    log.append(0, [make_event(i, ts=t0 + timedelta(minutes=i)) for i in range(10)])
    rows = describe_group(log, "g", clock)
    assert (rows[0].lag, rows[0].lag_seconds, rows[0].status) == (10, 9 * 60.0, Status.OK)
    assert (rows[1].lag, rows[1].lag_seconds) == (0, 0.0)

    log.commit("g", {0: 4}, clock.now())  # processed offsets 0..3 (ts minute 3)
    clock.advance(10)
    log.commit("g", {0: 4}, clock.now())
    rows = describe_group(log, "g", clock)
    assert (rows[0].current_offset, rows[0].log_end_offset, rows[0].lag) == (4, 10, 6)
    assert rows[0].lag_seconds == (9 - 3) * 60.0
    assert rows[0].status == Status.STALL  # committing, not moving, lag > 0
    clock.advance(3600)
    assert describe_group(log, "g", clock)[0].status == Status.STOP

    log.commit("g", {0: 10}, clock.now())
    row = describe_group(log, "g", clock)[0]
    assert (row.lag, row.lag_seconds, row.status) == (0, 0.0, Status.OK)

    table = describe_rows(describe_group(log, "g", clock))
    assert list(table[0]) == list(LAG_HEADERS)
    assert table[0]["CURRENT-OFFSET"] == "10" and table[1]["CURRENT-OFFSET"] == "-"


def test_lag_seconds_walks_back_over_records_without_time(make_log, make_event, clock):
    log = make_log(num_partitions=1)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    log.append(
        0,
        [
            make_event(0, ts=t0),
            b'{"no":"ts"}',
            b"not json",
            make_event(3, ts=t0 + timedelta(hours=1)),
        ],
    )
    log.commit("g", {0: 3}, clock.now())  # last processed (offset 2) has no ts: walk back to 0
    assert describe_group(log, "g", clock)[0].lag_seconds == 3600.0

    bare = make_log(num_partitions=1, name="bare")
    bare.append(0, [b'{"x":1}', b'{"x":2}'])
    bare.commit("g", {0: 1}, clock.now())
    assert describe_group(bare, "g", clock)[0].lag_seconds is None
    assert describe_rows(describe_group(bare, "g", clock))[0]["LAG-SECONDS"] == "-"
