"""File backend specifics: layout, topic metadata, segments, the sparse index, torn writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.clock import FakeClock
from pipeline.errors import ConfigError, LogError, TopicMismatchError
from pipeline.log import FileLog, open_log, resolve_offset, tail
from pipeline.log import segment as sg


def vals(n: int, start: int = 0, pad: int = 0) -> list[bytes]:
    return [
        f'{{"n":{i},"pad":"{"x" * ((i * 7) % (pad + 1))}"}}'.encode()
        for i in range(start, start + n)
    ]


def read_all(log: FileLog, p: int, batch: int = 500) -> list[bytes]:
    out, offset = [], log.start_offset(p)
    while True:
        got, offset = log.fetch_values(p, offset, max_records=batch)
        if not got:
            return out
        out += got


def pdir(log: FileLog, p: int = 0) -> Path:
    return log.path / f"partition-{p}"


def test_layout_and_topic_metadata(tmp_path):
    log = open_log(tmp_path, "events", 3)
    log.append(1, vals(2))
    assert (tmp_path / "events" / "topic.json").exists()
    assert sorted(
        p.name for p in (tmp_path / "events").iterdir() if p.name.startswith("partition")
    ) == [
        "partition-0",
        "partition-1",
        "partition-2",
    ]
    assert (
        tmp_path / "events" / "partition-1" / "00000000000000000000.log"
    ).read_bytes() == b"".join(v + b"\n" for v in vals(2))
    assert open_log(tmp_path, "events").num_partitions == 3  # None: read the stored count
    assert open_log(tmp_path, "fresh").num_partitions == 4  # default for a new topic


def test_partition_count_mismatch_names_both_values_and_remedy(tmp_path):
    open_log(tmp_path, "events", 4)
    with pytest.raises(TopicMismatchError) as err:
        open_log(tmp_path, "events", 8)
    msg = str(err.value)
    assert "4 partitions" in msg and "8 were requested" in msg and "num_partitions=4" in msg


def test_invalid_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fsync"):
        open_log(tmp_path, "t", fsync="sometimes")
    with pytest.raises(ConfigError, match="segment_bytes"):
        open_log(tmp_path, "t", segment_bytes=0)
    with pytest.raises(ConfigError, match="topic name"):
        open_log(tmp_path, "../up")
    with pytest.raises(LogError, match="does not exist"):
        FileLog(tmp_path / "missing", create=False)


def test_segments_roll_at_size_and_are_named_by_base_offset(file_log):
    log = file_log(1, segment_bytes=300)
    for i in range(10):
        log.append(0, vals(5, start=i * 5))
    names = sorted(n for n in os.listdir(pdir(log)) if n.endswith(".log"))
    assert len(names) > 3 and all(len(n) == 24 for n in names)
    bases = [int(n[:20]) for n in names]
    assert bases[0] == 0 and bases == sorted(bases)
    for n in names[:-1]:
        assert (pdir(log) / n).stat().st_size <= 300
    assert read_all(log, 0) == vals(50)
    info = log.partition_info(0)
    assert info.segments == len(names) and info.end_offset == 50


def test_seek_into_a_big_multi_segment_partition(file_log):
    log = file_log(1, segment_bytes=64 << 10, index_interval_bytes=512)
    data = vals(20_000, pad=40)
    for i in range(0, len(data), 1000):
        log.append(0, data[i : i + 1000])
    assert log.partition_info(0).segments > 10
    for offset in (0, 1, 511, 7_777, 12_345, 19_999):
        got = log.fetch(0, offset, max_records=3)
        assert [r.offset for r in got] == list(range(offset, min(offset + 3, 20_000)))
        assert [r.value for r in got] == data[offset : offset + 3]
    # a fresh reader (another process) seeks through segment list + index, no hint
    other = FileLog(log.path)
    assert other.fetch(0, 15_001, max_records=2)[0].value == data[15_001]
    # the index is sparse and bounds the scan to about one interval
    for base in sg.list_bases(pdir(log))[:-1]:
        index = sg.read_index(sg.index_path(pdir(log), base))
        assert index is not None and len(index) > 50
        gaps = [b - a for a, b in zip(index.poses, index.poses[1:], strict=False)]
        assert max(gaps) <= 512 + max(len(v) + 1 for v in data)


def test_deleted_or_corrupt_index_is_rebuilt_with_same_results(file_log):
    log = file_log(1, segment_bytes=32 << 10, index_interval_bytes=256)
    data = vals(5_000, pad=20)
    for i in range(0, len(data), 500):
        log.append(0, data[i : i + 500])
    bases = sg.list_bases(pdir(log))
    originals = {b: sg.index_path(pdir(log), b).read_bytes() for b in bases}
    sg.index_path(pdir(log), bases[1]).unlink()
    sg.index_path(pdir(log), bases[2]).write_bytes(b"\xff" * 24)  # garbage
    sg.index_path(pdir(log), bases[-1]).unlink()  # the active segment's, too
    fresh = FileLog(log.path, index_interval_bytes=256)  # same spacing -> same bytes
    for offset in (bases[1] + 17, bases[2] + 3, bases[-1] + 1, 4_999):
        assert fresh.fetch(0, offset, max_records=1)[0].value == data[offset]
    assert read_all(fresh, 0) == data
    for b in bases[1:3]:  # sealed segments: rebuilt and saved, byte for byte the same
        assert sg.index_path(pdir(log), b).read_bytes() == originals[b]
    assert sg.index_path(pdir(log), bases[-1]).exists() is False  # readers don't write it
    fresh.append(0, vals(10, start=5_000))  # the writer repairs the active index
    assert (
        sg.index_path(pdir(log), bases[-1]).read_bytes()[: len(originals[bases[-1]])]
        == originals[bases[-1]]
    )
    assert read_all(FileLog(log.path), 0) == data + vals(10, start=5_000)


def test_index_entries_pointing_nowhere_are_detected(file_log):
    log = file_log(1, segment_bytes=1 << 20, index_interval_bytes=64)
    data = vals(300)
    log.append(0, data)
    ipath = sg.index_path(pdir(log), 0)
    index = sg.read_index(ipath)
    assert index is not None
    # shift every position by 1: entries no longer point at line starts
    index.poses = type(index.poses)("I", [p + 1 for p in index.poses])
    ipath.write_bytes(index.to_bytes())
    fresh = FileLog(log.path)
    assert [r.value for r in fresh.fetch(0, 150, max_records=5)] == data[150:155]


def _torn_partition(log: FileLog) -> Path:
    log.append(0, vals(10))
    seg = pdir(log) / "00000000000000000000.log"
    with open(seg, "ab") as f:  # a writer that crashed mid-line
        f.write(b'{"n":10,"pad":"tor')
    return seg


def test_torn_tail_is_never_returned_and_is_returned_once_complete(file_log):
    log = file_log(1)
    seg = _torn_partition(log)
    reader = FileLog(log.path)
    assert read_all(reader, 0) == vals(10)
    assert reader.fetch(0, 10) == []
    assert reader.end_offset(0) == 10
    with open(seg, "ab") as f:  # the same write completes later
        f.write(b'n"}\n')
    assert [r.value for r in reader.fetch(0, 10)] == [b'{"n":10,"pad":"torn"}']
    assert reader.end_offset(0) == 11


def test_writer_truncates_a_torn_tail_and_loses_nothing_else(file_log):
    log = file_log(1)
    seg = _torn_partition(log)
    writer = FileLog(log.path)  # like a new producer process after the crash
    assert writer.append(0, vals(3, start=100)) == (10, 13)
    assert read_all(FileLog(log.path), 0) == vals(10) + vals(3, start=100)
    assert seg.read_bytes().endswith(b"\n") and b"tor" not in seg.read_bytes()
    # the original producer notices the changed end under the lock and continues
    assert log.append(0, vals(1, start=200)) == (13, 14)


def test_segment_truncated_mid_line(file_log):
    log = file_log(1, segment_bytes=1 << 20, index_interval_bytes=64)
    data = vals(200)
    log.append(0, data)
    seg = pdir(log) / "00000000000000000000.log"
    raw = seg.read_bytes()
    cut = raw.index(b"\n", len(raw) // 2) - 5  # mid-line, 5 bytes before a newline
    os.truncate(seg, cut)
    complete = raw[:cut].count(b"\n")
    reader = FileLog(log.path)
    assert read_all(reader, 0) == data[:complete]
    writer = FileLog(log.path)
    assert writer.append(0, [b'{"after":1}']) == (complete, complete + 1)
    assert read_all(FileLog(log.path), 0) == data[:complete] + [b'{"after":1}']


def test_two_writers_in_turn_continue_each_others_offsets(file_log):
    a, b = file_log(1, segment_bytes=500), file_log(1, segment_bytes=500)
    expected = []
    for i in range(30):
        w = a if i % 3 else b
        batch = vals(4, start=i * 4)
        first, end = w.append(0, batch)
        assert (first, end) == (i * 4, i * 4 + 4)
        expected += batch
    assert read_all(a, 0) == expected == read_all(b, 0)


@pytest.mark.parametrize("policy", ["batch", "interval"])
def test_fsync_policies(file_log, policy):
    clock = FakeClock()
    log = file_log(1, fsync=policy, fsync_interval_s=5.0, clock=clock)
    for i in range(5):
        log.append(0, vals(2, start=i * 2))
        clock.advance(3)
    assert read_all(log, 0) == vals(10)


def test_tail_helpers_and_topic_info(file_log):
    log = file_log(2, retention={"retention_hours": 24})
    log.append(0, vals(30))
    assert resolve_offset(log, 0, "earliest") == 0
    assert resolve_offset(log, 0, "latest") == 30
    assert resolve_offset(log, 0, -5) == 25
    assert resolve_offset(log, 0, "-500") == 0
    assert [r.offset for r in tail(log, 0, -3)] == [27, 28, 29]
    assert [r.offset for r in tail(log, 0, 10, limit=2)] == [10, 11]
    with pytest.raises(LogError, match="earliest"):
        resolve_offset(log, 0, "yesterday")
    info = log.topic_info()
    assert (info.num_partitions, info.records, info.segments) == (
        2,
        30,
        info.partitions[0].segments,
    )
    assert info.bytes == sum(len(v) + 1 for v in vals(30))
    assert info.retention["retention_hours"] == 24


def test_small_max_bytes_far_from_an_index_entry_still_returns_a_record(file_log):
    log = file_log(1, segment_bytes=1 << 20, index_interval_bytes=1 << 20)  # no entries
    big = [(f'{{"n":{i},"pad":"' + "y" * 5000 + '"}').encode() for i in range(100)]
    log.append(0, big)
    fresh = FileLog(log.path, index_interval_bytes=1 << 20)  # cold: no hint, no size estimate
    assert [r.value for r in fresh.fetch(0, 50, max_bytes=100)] == [big[50]]
    assert [r.offset for r in fresh.fetch(0, 97, max_records=10)] == [97, 98, 99]


def test_a_long_replay_keeps_a_bounded_number_of_files_open(file_log, monkeypatch):
    from pipeline.log import reader

    monkeypatch.setattr(reader, "MAX_OPEN_SEGMENTS", 3)
    log = file_log(1, segment_bytes=100)
    data = vals(60)
    for i in range(0, 60, 3):
        log.append(0, data[i : i + 3])
    fresh = FileLog(log.path, segment_bytes=100)
    assert read_all(fresh, 0) == data
    assert len(fresh._parts[0].reader._segs) <= 3
    assert [r.value for r in fresh.fetch(0, 1, max_records=2)] == data[1:3]  # reopened


def test_lost_topic_metadata_beside_records_is_refused_with_its_content(tmp_path, capsys):
    """Repro: topic.json deleted under 180k records: every command said "no topic, run `churn
    simulate` first" (which refuses, and --overwrite would destroy the records), `churn
    topics` left the topic out, and a producer opening it would have created it anew with
    the default 4 partitions, routing users away from their history."""
    import json

    from churn.cli.app import main

    log = open_log(tmp_path / "log", "events", 2)
    log.append(0, vals(5))
    log.append(1, vals(3))
    log.close()
    (tmp_path / "log" / "events" / "topic.json").unlink()
    for kwargs in ({}, {"num_partitions": 4}):
        with pytest.raises(LogError, match=r"topic metadata .*topic.json is missing, but .* holds records in "
                                            r"partitions \[0, 1\]") as exc:  # fmt: skip
            open_log(tmp_path / "log", "events", **kwargs)
        assert not (tmp_path / "log" / "events" / "topic.json").exists()  # nothing created
    for args in (["lag"], ["stream", "--until-caught-up"], ["tail"]):
        with pytest.raises(SystemExit) as code:
            main(["--data-dir", str(tmp_path), *args])
        err = capsys.readouterr().err.replace("\n", "")
        assert code.value.code == 1 and "is missing, but" in err and "run `churn simulate`" not in err, (args, err)
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path), "topics"])
    assert "warning: topic metadata" in capsys.readouterr().err.replace("\n", "")
    doc = str(exc.value).split("echo '")[1].split("' >")[0]  # what the message says to write
    (tmp_path / "log" / "events" / "topic.json").write_text(doc)
    assert json.loads(doc)["num_partitions"] == 2
    with open_log(tmp_path / "log", "events") as again:
        assert again.num_partitions == 2 and read_all(again, 0) == vals(5) and read_all(again, 1) == vals(3)
