"""The PartitionLog contract, written once and run against every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.errors import LogError, OffsetOutOfRangeError
from pipeline.log import PartitionLog, Record, partition_for

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def values(n: int, prefix: str = "v") -> list[bytes]:
    return [f'{{"{prefix}":{i}}}'.encode() for i in range(n)]


def read_all(log: PartitionLog, p: int, start: int = 0, batch: int = 7) -> list[Record]:
    out, offset = [], start
    while batch_ := log.fetch(p, offset, max_records=batch):
        out += batch_
        offset = batch_[-1].offset + 1
    return out


def test_append_returns_offset_ranges(make_log):
    log = make_log(num_partitions=2)
    assert log.append(0, values(3)) == (0, 3)
    assert log.append(0, values(2)) == (3, 5)
    assert log.append(1, values(1)) == (0, 1)
    assert log.append(1, []) == (1, 1)


def test_fetch_returns_appended_records_in_order(make_log):
    log = make_log(num_partitions=1)
    vals = values(100)
    log.append(0, vals[:40])
    log.append(0, vals[40:])
    got = read_all(log, 0)
    assert [r.value for r in got] == vals
    assert [r.offset for r in got] == list(range(100))
    assert all(r.partition == 0 for r in got)
    assert log.fetch(0, 57, max_records=1) == [Record(0, 57, vals[57])]


def test_offsets_start_end_and_info(make_log):
    log = make_log(num_partitions=3)
    log.append(2, values(5))
    assert (log.start_offset(2), log.end_offset(2)) == (0, 5)
    assert (log.start_offset(0), log.end_offset(0)) == (0, 0)
    info = log.partition_info(2)
    assert (info.partition, info.start_offset, info.end_offset, info.records) == (2, 0, 5, 5)
    assert info.bytes == sum(len(v) + 1 for v in values(5))
    topic = log.topic_info()
    assert topic.num_partitions == 3 and topic.records == 5 and len(topic.partitions) == 3


def test_max_records_and_max_bytes(make_log):
    log = make_log(num_partitions=1)
    vals = values(50)
    log.append(0, vals)
    assert len(log.fetch(0, 0, max_records=10)) == 10
    size = len(vals[0]) + 1
    got = log.fetch(0, 0, max_records=50, max_bytes=3 * size)
    assert [r.value for r in got] == vals[:3]
    # at least one record even when it is larger than max_bytes
    assert [r.value for r in log.fetch(0, 4, max_bytes=1)] == [vals[4]]
    assert log.fetch(0, 0, max_records=0) == []


def test_fetch_past_end_is_empty_and_below_start_raises(make_log):
    log = make_log(num_partitions=1)
    log.append(0, values(3))
    assert log.fetch(0, 3) == []
    assert log.fetch(0, 1000) == []
    assert log.fetch_values(0, 3) == ([], 3)
    with pytest.raises(OffsetOutOfRangeError):
        log.fetch(0, -1)


def test_fetch_values_matches_fetch(make_log):
    log = make_log(num_partitions=1)
    vals = values(30)
    log.append(0, vals)
    got, nxt = log.fetch_values(0, 10, max_records=5)
    assert got == vals[10:15] and nxt == 15


def test_unknown_partition_and_bad_values_are_rejected(make_log):
    log = make_log(num_partitions=2)
    with pytest.raises(LogError, match="partitions 0..1"):
        log.append(2, values(1))
    with pytest.raises(LogError, match="partitions 0..1"):
        log.fetch(-1, 0)
    with pytest.raises(LogError, match="newline"):
        log.append(0, [b"ok", b"two\nlines"])
    assert log.end_offset(0) == 0  # nothing of the rejected batch was written


def test_commit_and_committed(make_log):
    log = make_log(num_partitions=2)
    log.append(0, values(10))
    assert log.committed("g") == {} and log.groups() == []
    log.commit("g", {0: 4}, WHEN)
    log.commit("g", {1: 0}, WHEN)
    log.commit("g", {0: 7}, WHEN)
    assert log.committed("g") == {0: 7, 1: 0}
    assert log.groups() == ["g"]
    hist = log.commit_history("g")[0]
    assert [(c.offset, c.log_end, c.lag) for c in hist] == [(4, 10, 6), (7, 10, 3)]
    with pytest.raises(LogError):
        log.commit("g", {5: 1}, WHEN)
    with pytest.raises(LogError, match="timezone"):
        log.commit("g", {0: 1}, datetime(2026, 1, 1))
    with pytest.raises(LogError, match="group name"):
        log.commit("../evil", {0: 1}, WHEN)


def test_reset_offsets(make_log):
    log = make_log(num_partitions=2)
    log.append(0, values(10))
    log.append(1, values(3))
    assert log.reset_offsets("g", to="latest") == {0: 10, 1: 3}
    assert log.committed("g") == {0: 10, 1: 3}
    assert log.reset_offsets("g", to="earliest") == {0: 0, 1: 0}
    with pytest.raises(LogError):
        log.reset_offsets("g", to="middle")  # type: ignore[arg-type]


def test_new_group_lag_is_everything(make_log, clock):
    from pipeline.log import describe_group

    log = make_log(num_partitions=2)
    log.append(0, values(10))
    log.append(1, values(4))
    rows = describe_group(log, "fresh", clock)
    assert [(r.current_offset, r.log_end_offset, r.lag) for r in rows] == [
        (None, 10, 10),
        (None, 4, 4),
    ]
    assert rows[0].row()["CURRENT-OFFSET"] == "-"


def test_produce_routes_like_kafka(make_log):
    log = make_log(num_partitions=4)
    items = [(f"user-{i % 13}".encode(), f'{{"i":{i}}}'.encode()) for i in range(200)]
    log.produce(items)
    for p in range(4):
        expected = [v for k, v in items if partition_for(k, 4) == p]
        assert [r.value for r in read_all(log, p)] == expected


def test_record_is_frozen():
    r = Record(0, 1, b"x")
    with pytest.raises(AttributeError):
        r.offset = 2  # type: ignore[misc]
