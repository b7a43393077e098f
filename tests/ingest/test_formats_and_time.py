"""Each source format gives the same events; timestamps in every unit, format and zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import SourceError
from pipeline.ingest.readers import detect_format, iter_batches
from pipeline.ingest.timestamps import MAX_US, MIN_US, parse_timestamps

from .helpers import Env, mapping, rows_to_csv, sample_rows


def _strip(events):
    return sorted((e["user_id"], e["ts"], e["type"], {k: v for k, v in e.items() if k not in ("event_id",)}.__repr__())
                  for e in events)


@pytest.fixture
def rows():
    return sample_rows(users=4, days=6)


def _parquet(rows, path):
    cols = {k: [r.get(k) for r in rows] for k in ("uid", "t", "kind", "minutes", "amount", "plan")}
    pq.write_table(pa.table(cols), path, row_group_size=7)  # several row groups
    return path


def _jsonl(rows, path):
    path.write_text("".join(json.dumps({k: v for k, v in r.items()}) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "jsonl"])
def test_every_format_gives_the_same_events(tmp_path, rows, fmt) -> None:
    ref_env, env = Env(tmp_path / "ref"), Env(tmp_path / fmt)
    try:
        ref = ref_env.run([rows_to_csv(rows, tmp_path / "ref.csv")], mapping())
        path = tmp_path / f"src.{fmt}"
        if fmt == "parquet":
            _parquet(rows, path)
        elif fmt == "jsonl":
            _jsonl(rows, path)
        else:
            rows_to_csv(rows, path)
        s = env.run([path], mapping())
        assert s.rows_read == len(rows) == ref.rows_read
        assert s.events_by_type == ref.events_by_type and s.rejected_rows == 0
        assert _strip(env.events()) == _strip(ref_env.events())
        ids = [e["event_id"] for e in env.events()]
        assert len(set(ids)) == len(ids)
    finally:
        ref_env.close()
        env.close()


def test_batches_carry_source_row_numbers(tmp_path, rows, monkeypatch) -> None:
    import pipeline.ingest.readers as readers

    monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 5)
    path = _parquet(rows, tmp_path / "a.parquet")
    batches = list(iter_batches(path, mapping()))
    assert [b.first_row for b in batches] == list(range(1, len(rows) + 1, 5))
    assert batches[-1].done == 1.0
    uids = [u for b in batches for u in b.data.column("uid").to_pylist()]
    assert uids == [r["uid"] for r in rows]


def test_unreadable_sources_are_one_clear_error(tmp_path, rows) -> None:
    with pytest.raises(SourceError, match="cannot tell the format"):
        detect_format(tmp_path / "events.xlsx")
    assert detect_format(tmp_path / "e.JSONL.gz") == ("jsonl", True)
    bad = rows_to_csv([{"uid": "u", "t": 1}], tmp_path / "cols.csv", header=["uid", "t"])
    with pytest.raises(SourceError, match=r"column 'kind' \(mapping key event_type.column\) is not in the file"):
        list(iter_batches(bad, mapping()))
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(SourceError, match="cannot read as csv"):
        list(iter_batches(tmp_path / "broken.csv.gz", mapping()))
    with pytest.raises(SourceError, match="no such file"):
        list(iter_batches(tmp_path / "nope.csv", mapping()))


def test_a_cut_off_gzip_file_says_it_is_incomplete(tmp_path, rows) -> None:
    whole = rows_to_csv(rows * 200, tmp_path / "whole.csv.gz", header=list(rows[0]))
    raw = whole.read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SourceError, match=r"cannot read as csv \(gzip\): .*the file is incomplete: copy or export it again"):
        list(iter_batches(cut, mapping()))


def _us(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize(("unit", "value"), [("s", 1_767_225_600), ("ms", 1_767_225_600_000),
                                             ("us", 1_767_225_600_000_000), ("ns", 1_767_225_600_000_000_000),
                                             ("s", 1_767_225_600.5), ("ms", "1767225600000")])
def test_epoch_units(unit, value) -> None:
    us, err = parse_timestamps(pa.array([value]), mapping(timestamp={"column": "t", "epoch_unit": unit}))
    assert err == [None]
    frac = 500_000 if value == 1_767_225_600.5 else 0
    assert us[0] == _us(2026, 1, 1) + frac


def test_wrong_epoch_unit_and_bad_numbers_are_rejected() -> None:
    m = mapping(timestamp={"column": "t", "epoch_unit": "s"})
    us, err = parse_timestamps(pa.array(["1767225600000", "abc", None, "1767225600"]), m)
    assert err[0] == "timestamp: outside 1971..2199 (wrong epoch_unit?)"
    assert err[1:3] == ["timestamp: not a number", "timestamp: empty"] and err[3] is None
    assert us[3] == _us(2026, 1, 1)


def test_iso_offsets_are_converted_to_utc_and_naive_values_need_a_zone() -> None:
    values = pa.array(["2026-03-01T10:00:00Z", "2026-03-01T10:00:00+02:00", "2026-03-01 10:00:00"])
    us, err = parse_timestamps(values, mapping(timestamp={"column": "t", "format": "ISO8601"}))
    assert us[:2].tolist() == [_us(2026, 3, 1, 10), _us(2026, 3, 1, 8)] and err[:2] == [None, None]
    assert err[2] == "timestamp: no zone in the value and timestamp.timezone is not set"
    us, err = parse_timestamps(values, mapping(timestamp={"column": "t", "format": "ISO8601",
                                                           "timezone": "America/New_York"}))
    assert err == [None, None, None] and us[2] == _us(2026, 3, 1, 15)  # EST = UTC-5


def test_all_naive_without_zone_rejected_and_with_zone_localised() -> None:
    values = pa.array(["2026-07-01 12:00:00", "2026-01-01 12:00:00", None])
    m = mapping(timestamp={"column": "t", "format": "%Y-%m-%d %H:%M:%S"})
    _, err = parse_timestamps(values, m)
    assert err[:2] == ["timestamp: no zone in the value and timestamp.timezone is not set"] * 2
    assert err[2] == "timestamp: empty"
    us, err = parse_timestamps(values, mapping(timestamp={"column": "t", "format": "%Y-%m-%d %H:%M:%S",
                                                          "timezone": "Europe/Berlin"}))
    assert us[:2].tolist() == [_us(2026, 7, 1, 10), _us(2026, 1, 1, 11)]  # CEST +2 / CET +1
    assert err == [None, None, "timestamp: empty"]


def test_dst_gaps_and_repeats_are_rejected_not_shifted() -> None:
    m = mapping(timestamp={"column": "t", "format": "%Y-%m-%d %H:%M", "timezone": "Europe/Berlin"})
    us, err = parse_timestamps(pa.array(["2026-03-29 02:30", "2026-10-25 02:30", "2026-10-25 04:30", "junk"]), m)
    assert err[0] == err[1] == "timestamp: local time does not exist or is ambiguous in Europe/Berlin (DST change)"
    assert err[2] is None and us[2] == _us(2026, 10, 25, 3, 30)
    assert err[3] == "timestamp: does not match format '%Y-%m-%d %H:%M'"


def test_percent_z_format_and_mixed_offsets() -> None:
    m = mapping(timestamp={"column": "t", "format": "%d/%m/%Y %H:%M %z"})
    us, err = parse_timestamps(pa.array(["01/02/2026 10:00 +0100", "01/02/2026 10:00 -0500"]), m)
    assert err == [None, None]
    assert us.tolist() == [_us(2026, 2, 1, 9), _us(2026, 2, 1, 15)]
    assert np.all(us > 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1972, 1, 1), max_value=datetime(2199, 1, 1),
                             timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                        timezone(timedelta(hours=-8))])),
                min_size=1, max_size=20))
def test_iso_values_with_offsets_round_trip_to_utc(stamps) -> None:
    m = mapping(timestamp={"column": "t", "format": "ISO8601"})
    us, err = parse_timestamps(pa.array([t.isoformat() for t in stamps]), m)
    assert err == [None] * len(stamps)
    assert us.tolist() == [(t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for t in stamps]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(MIN_US // 1000, MAX_US // 1000 - 1), min_size=1, max_size=20))
def test_epoch_milliseconds_are_exact(ms) -> None:
    us, err = parse_timestamps(pa.array(ms, pa.int64()), mapping(timestamp={"column": "t", "epoch_unit": "ms"}))
    assert err == [None] * len(ms) and us.tolist() == [v * 1000 for v in ms]
