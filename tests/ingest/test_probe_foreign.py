"""Findings of probing `churn import` with foreign event logs, one test each: placeholder
years get the range reason, a directory or an empty file is named for what it is, a
mapped value that Arrow would read as missing (``NA``, ``null``) is kept as text,
padded or invisibly altered user ids are rejected, nested JSON fields are reachable as
``a.b``, repeated rows and events older than the log are reported, and the summary table
never hides rejection reasons."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner
from yaml import safe_load as yaml_load

from churn.cli.app import app
from pipeline.ingest import duplicates
from pipeline.ingest.duplicates import count_duplicates
from pipeline.ingest.errors import SourceError
from pipeline.ingest.readers import iter_batches
from pipeline.ingest.timestamps import parse_timestamps

from .helpers import DELETE, HEADER, T0, Env, mapping, rows_to_csv, sample_rows, write_mapping


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def _plays(n: int, **over) -> list[dict]:
    return [{"uid": f"u{i % 5}", "t": T0 + 60 * i, "kind": "play", "minutes": 10} | over for i in range(n)]


def test_placeholder_years_are_out_of_range_not_a_dst_change() -> None:
    m = mapping(timestamp={"column": "t", "format": "%Y-%m-%d %H:%M:%S", "timezone": "UTC"})
    _, errors = parse_timestamps(pa.array(["0001-01-01 00:00:00", "9999-12-31 23:59:59", "2026-01-01 00:00:00"]), m)
    assert errors == ["timestamp: outside 1971..2199"] * 2 + [None]
    iso = mapping(timestamp={"column": "t", "format": "ISO8601"})
    _, errors = parse_timestamps(pa.array(["0001-01-01T00:00:00Z", "1767227814190", "2026-01-01T00:00:00Z"]), iso)
    assert errors[0] == "timestamp: outside 1971..2199"
    assert "epoch number" in errors[1] and "epoch_unit" in errors[1] and errors[2] is None
    # a format of digits alone: a bad value is a mismatch, not "an epoch number"
    compact = mapping(timestamp={"column": "t", "format": "%Y%m%d%H%M%S", "timezone": "UTC"})
    _, errors = parse_timestamps(pa.array(["20241301120000", "20260101120000"]), compact)
    assert errors == ["timestamp: does not match format '%Y%m%d%H%M%S'", None]


def test_a_directory_and_an_empty_file_are_named_for_what_they_are(env, tmp_path) -> None:
    (tmp_path / "exports").mkdir()
    with pytest.raises(SourceError, match=r"exports: is a directory, not a file; pass the files in it"):
        env.run([tmp_path / "exports"], mapping())
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty.csv: the file is empty \(0 bytes\)"):
        env.run([tmp_path / "empty.csv"], mapping())


def test_values_arrow_reads_as_missing_are_kept_when_the_mapping_names_them(env, tmp_path) -> None:
    rows = sample_rows(users=2, days=3)
    rows.append({"uid": "u1", "t": T0 + 5 * 86400, "kind": "pay", "amount": 5, "plan": "NA"})
    rows.append({"uid": "u1", "t": T0 + 6 * 86400, "kind": "null"})
    m = mapping(fields__payment__plan={"column": "plan", "values": {"b": "basic", "NA": "premium"}},
                event_type__values={"play": "session", "pay": "payment", "null": "cancel"})
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    assert s.rejected_rows == 0, s.rejected
    by_type = Counter(e["type"] for e in env.events())
    assert by_type["cancel"] == 1
    assert {e["plan"] for e in env.events() if e["type"] == "payment"} == {"basic", "premium"}


def test_a_marker_named_for_one_column_is_still_missing_in_the_others(env, tmp_path) -> None:
    """Arrow's null markers apply file-wide: naming ``NA`` and ``null`` for the plan and event
    type columns must not make them text in the user id or the minutes (review finding)."""
    rows = sample_rows(users=2, days=3)
    rows.append({"uid": "NA", "t": T0 + 5 * 86400, "kind": "play", "minutes": 3})  # no user: rejected
    rows.append({"uid": "null", "t": T0 + 5 * 86400, "kind": "play", "minutes": 3})  # same
    rows.append({"uid": "u1", "t": T0 + 6 * 86400, "kind": "play", "minutes": "NA"})  # missing: default 0
    m = mapping(fields__payment__plan={"column": "plan", "values": {"b": "basic", "NA": "premium"}},
                event_type__values={"play": "session", "pay": "payment", "null": "cancel"})
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], m)
    assert s.rejected == Counter({"user_id: empty": 2}), s.rejected
    assert {e["user_id"] for e in env.events()} <= {"u0", "u1"}
    last = max((e for e in env.events() if e["type"] == "session" and e["user_id"] == "u1"), key=lambda e: e["ts"])
    assert last["watch_minutes"] == 0


def test_padded_and_invisibly_altered_user_ids_are_rejected(env, tmp_path) -> None:
    rows = _plays(12)
    rows[3]["uid"] = " u3"
    rows[4]["uid"] = "u4 "
    rows[5]["uid"] = "u\u200b0"
    rows[6]["uid"] = "müller"  # non-ASCII is a real id
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], mapping())
    assert s.rejected == Counter({"user_id: leading or trailing whitespace": 2,
                                  "user_id: contains invisible characters (zero-width, direction mark or BOM)": 1})
    assert sorted(d["source_offset"] for d in env.dead_letters()) == [4, 5, 6]
    assert "müller" in {e["user_id"] for e in env.events()}


def test_nested_json_fields_are_read_by_dotted_column_names(env, tmp_path) -> None:
    lines = [{"user": {"id": f"u{i % 3}"}, "event": {"name": "play", "props": {"min": 5}}, "time": T0 + 60 * i}
             for i in range(9)]
    lines[2]["user"] = {"name": "no id"}  # the nested key is missing: an empty user id, one rejected row
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in lines))
    nested = {"timestamp": {"column": "time", "epoch_unit": "s"}, "event_type__column": "event.name",
              "event_type__values": {"play": "session", "quit": "cancel"},
              "fields__payment": DELETE, "fields__support_ticket": DELETE}
    s = env.run([src], mapping(user_id="user.id", fields__session__watch_minutes={"column": "event.props.min"},
                               **nested))
    assert s.rejected == Counter({"user_id: empty": 1})
    sessions = [e for e in env.events() if e["type"] == "session"]
    assert len(sessions) == 8 and {e["watch_minutes"] for e in sessions} == {5}
    with pytest.raises(SourceError, match=r"column 'user.uid' \(mapping key user_id\) is not in the file"):
        list(iter_batches(src, mapping(user_id="user.uid", **nested)))


def test_a_json_object_or_array_in_a_mapped_column_is_a_rejected_row(env, tmp_path) -> None:
    """Mapping ``user_id: user`` on {"user": {"id": ...}} imported users whose ids were the
    objects' JSON text; such a row is now rejected with the key to map instead, and only it."""
    lines = [{"user": {"id": f"u{i % 3}"}, "uid": f"u{i % 3}", "kind": "play", "t": T0 + 60 * i, "minutes": 5}
             for i in range(10)]
    lines[3]["uid"] = {"id": "u0"}
    lines[5]["minutes"] = [5, 6]
    src = tmp_path / "a.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in lines))
    s = env.run([src], mapping(fields__payment=DELETE, event_type__values={"play": "session", "quit": "cancel"}))
    assert s.rejected == Counter({"row: column 'uid' is a JSON object, not one value (map one of its keys as "
                                  "uid.<key>)": 1, "row: column 'minutes' is a JSON array, not one value": 1})
    assert sorted(d["source_offset"] for d in env.dead_letters()) == [4, 6]
    assert {e["user_id"] for e in env.events()} == {"u0", "u1", "u2"}


def test_parquet_struct_fields_are_read_like_nested_json(tmp_path) -> None:
    """The same mapping (``user.id``, ``event.props.min``) reads a Parquet file's struct
    columns as it reads nested JSON: the same events, a null struct an empty cell (one
    rejected row), a top-level column spelled ``a.b`` first; a mapped struct or list is
    refused before any row is read, naming what could be mapped."""
    import pyarrow.parquet as pq

    lines = [{"user": {"id": f"u{i % 3}", "tier": "x"}, "event": {"name": "play", "props": {"min": 5 + i}},
              "time": T0 + 60 * i, "tags": ["a"]} for i in range(9)]
    lines[2]["user"] = None  # no user struct at all: an empty user id, one rejected row
    lines[4]["user"] = {"id": None, "tier": "x"}
    nested = {"timestamp": {"column": "time", "epoch_unit": "s"}, "event_type__column": "event.name",
              "event_type__values": {"play": "session", "quit": "cancel"},
              "fields__payment": DELETE, "fields__support_ticket": DELETE}
    m = mapping(user_id="user.id", fields__session__watch_minutes={"column": "event.props.min"}, **nested)
    src = {"jsonl": tmp_path / "a.jsonl", "parquet": tmp_path / "a.parquet"}
    src["jsonl"].write_text("".join(json.dumps(d) + "\n" for d in lines))
    pq.write_table(pa.Table.from_pylist(lines), src["parquet"], row_group_size=4)
    got = {}
    for fmt, path in src.items():
        env = Env(tmp_path / fmt)
        try:
            s = env.run([path], m)
            assert s.rejected == Counter({"user_id: empty": 2}), fmt
            got[fmt] = sorted((e["user_id"], e["ts"], e["type"], e.get("watch_minutes")) for e in env.events())
        finally:
            env.close()
    assert got["parquet"] == got["jsonl"] and len([e for e in got["jsonl"] if e[2] == "session"]) == 7
    assert {e[3] for e in got["parquet"] if e[2] == "session"} == {5 + i for i in range(9) if i not in (2, 4)}

    with pytest.raises(SourceError, match=r"column 'user.uid' \(mapping key user_id\) is not in the file; "
                                          r"its columns: user, user.id, user.tier, event, event.name, event.props, "
                                          r"event.props.min, time, tags"):
        list(iter_batches(src["parquet"], mapping(user_id="user.uid", **nested)))
    with pytest.raises(SourceError, match=r"column 'user' \(mapping key user_id\) is a struct column "
                                          r"\(its fields: user.id, user.tier\): map one of its fields"):
        list(iter_batches(src["parquet"], mapping(user_id="user", **nested)))
    with pytest.raises(SourceError, match=r"column 'tags' \(mapping key user_id\) is a list<.*> column, not one value"):
        list(iter_batches(src["parquet"], mapping(user_id="tags", **nested)))

    flat = pa.Table.from_pylist(lines).append_column("user.id", pa.array([f"top{i % 2}" for i in range(9)]))
    pq.write_table(flat, tmp_path / "b.parquet")
    batch = next(iter_batches(tmp_path / "b.parquet", m))
    assert batch.data.column("user.id").to_pylist()[:3] == ["top0", "top1", "top0"]  # the top-level column wins


@pytest.mark.parametrize(("name", "data", "said"), [
    ("excel.csv", "uid,t\nu1,1\n".encode("utf-16"), r"is UTF-16 text \(Excel's 'Unicode Text' export\?\); the "
                                                      r"importer reads UTF-8 CSV: convert it, e.g. iconv -f UTF-16"),
    ("e.jsonl", '{"uid": "u1"}\n'.encode("utf-16"), r"is UTF-16 text .* reads UTF-8 JSON lines"),
    ("book.csv", b"PK\x03\x04" + bytes(200), r"is a ZIP archive \(an Excel .xlsx workbook\?\), not CSV text"),
    ("blob.csv", b"uid,t\n\x00\x01\x02", r"contains NUL bytes: a binary file"),
    ("hdr.csv", "uid,t,kind,größe\nu1,1,play,2\n".encode("latin-1"), r"the header row is not UTF-8 text \(a "
                                                                     r"Latin-1 or Windows-1252 export\?\)"),
])
def test_files_that_are_not_utf8_text_are_named_for_what_they_are(tmp_path, monkeypatch, name, data, said) -> None:
    """Before, a UTF-16 CSV (Excel's "Unicode Text" export) crashed the import with a
    UnicodeDecodeError traceback, and the others failed as garbled columns or rows."""
    seen: list = []
    monkeypatch.setattr("sys.unraisablehook", seen.append)
    (tmp_path / name).write_bytes(data)
    with pytest.raises(SourceError, match=said):
        list(iter_batches(tmp_path / name, mapping()))
    assert seen == []


def test_a_tsv_file_is_read_split_on_tabs_unless_the_mapping_says_otherwise(tmp_path) -> None:
    """A ``.tsv`` export was read split on ',' (one column) unless the mapping set
    ``csv.delimiter``; a tab is now its default. A delimiter the mapping gives still wins,
    and other names (``.csv``, ``.txt``) keep ','."""
    body = "\t".join(HEADER) + "\n" + "\t".join(["u1", str(T0), "play", "5", "", ""]) + "\n"
    for name in ("a.tsv", "b.TSV.gz"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(body.encode()) if name.endswith(".gz") else body.encode())
        assert [b.data.column("uid").to_pylist() for b in iter_batches(path, mapping())] == [["u1"]]
    with pytest.raises(SourceError, match=re.escape("split on ',' but contains '\\t'")):
        list(iter_batches(tmp_path / "a.tsv", mapping(csv={"delimiter": ","})))
    (tmp_path / "c.txt").write_text(body)
    with pytest.raises(SourceError, match="is not in the file"):
        list(iter_batches(tmp_path / "c.txt", mapping()))
    assert mapping().delimiter_for("x.tsv.gz") == "\t" and mapping().delimiter_for("x.csv") == ","
    assert mapping(csv={"delimiter": ";"}).delimiter_for("x.tsv") == ";"


def test_a_mapped_column_named_twice_is_refused_not_read_from_the_first(tmp_path) -> None:
    """A header naming ``uid`` twice imported the first column's ids and ignored the
    second without a word; the file is refused, in CSV and Parquet alike. A repeated
    column the mapping does not read is fine."""
    import pyarrow.parquet as pq

    said = r"column 'uid' \(mapping key user_id\) appears 2 times among the file's columns: rename or drop"
    src = tmp_path / "a.csv"
    src.write_text(",".join(HEADER) + ",uid\nu1,1,play,5,,,u2\n")
    with pytest.raises(SourceError, match=said):
        list(iter_batches(src, mapping()))
    t = pa.table([pa.array(["u1"]), pa.array(["u2"]), pa.array([T0]), pa.array(["play"])], names=["uid", "uid", "t", "kind"])
    pq.write_table(t, tmp_path / "a.parquet")
    with pytest.raises(SourceError, match=said):
        list(iter_batches(tmp_path / "a.parquet", mapping()))
    fine = tmp_path / "b.csv"
    fine.write_text(",".join(HEADER) + ",note,note\nu1,1,play,5,,,x,y\n")
    assert [b.data.column("uid").to_pylist() for b in iter_batches(fine, mapping())] == [["u1"]]


@pytest.mark.parametrize(("header", "said"), [
    ("UID,t,kind,minutes,amount,plan", "did you mean 'UID'?"),  # case
    (" uid ,t,kind,minutes,amount,plan", "did you mean ' uid '?"),  # spaces around the name
    ("user,t,kind,minutes,amount,plan", "its columns: user, t, kind, minutes, amount, plan"),  # no near name
])
def test_a_missing_column_points_at_the_near_one(tmp_path, header, said) -> None:
    src = tmp_path / "a.csv"
    src.write_text(header + "\nu1,1,play,5,,\n")
    with pytest.raises(SourceError, match=re.escape(said)) as err:
        list(iter_batches(src, mapping()))
    assert ("did you mean" in str(err.value)) == ("did you mean" in said)
    typo = tmp_path / "b.csv"
    typo.write_text("uid,t,kind,minuts,amount,plan\nu1,1,play,5,,\n")
    with pytest.raises(SourceError, match=re.escape("column 'minutes' (mapping key fields.session.watch_minutes) is "
                                                    "not in the file; its columns: uid, t, kind, minuts, amount, "
                                                    "plan; did you mean 'minuts'?")):
        list(iter_batches(typo, mapping()))


def test_a_json_document_is_not_taken_for_json_lines(env, tmp_path) -> None:
    """A ``.json`` export that is one array (pretty-printed or on one line) or one
    pretty-printed object failed with "column 'uid' is not in the file; its columns: "
    and an empty list. Each is now named, with the conversion; a JSON lines file whose
    first line happens to be an array of numbers is still read, that line rejected."""
    rows = [{"uid": "u1", "t": T0, "kind": "play", "minutes": 5}, {"uid": "u2", "t": T0 + 60, "kind": "play"}]
    cases = {"pretty.json": json.dumps(rows, indent=2), "compact.json": json.dumps(rows),
             "object.json": json.dumps({"events": rows}, indent=2)}
    for name, body in cases.items():
        (tmp_path / name).write_text(body)
    for name in ("pretty.json", "compact.json"):
        with pytest.raises(SourceError, match=rf"{name}: is one JSON array, not JSON lines .*jq -c '\.\[\]'"):
            list(iter_batches(tmp_path / name, mapping()))
    with pytest.raises(SourceError, match=r"object.json: no line read is a JSON object \(15 lines, the first: not "
                                          r"valid JSON\); JSON lines has one object per line"):
        list(iter_batches(tmp_path / "object.json", mapping()))
    lines = tmp_path / "a.jsonl"
    lines.write_text("[1, 2]\n" + "".join(json.dumps(r) + "\n" for r in rows))
    s = env.run([lines], mapping(fields__payment=DELETE, event_type__values={"play": "session", "quit": "cancel"}))
    assert s.rejected == Counter({"row: not a JSON object": 1}) and s.events_by_type["session"] == 2


def test_a_malformed_row_that_is_not_utf8_fails_the_file_quietly_and_says_why(tmp_path, monkeypatch) -> None:
    """Arrow decodes a malformed row as UTF-8 before calling the invalid-row handler; on
    Latin-1 bytes that failed inside Arrow with "Exception ignored" and a traceback on the
    terminal. The parse error now says why the row could not be set aside, and the hook
    that kept the traceback off is gone afterwards."""
    seen: list = []
    monkeypatch.setattr("sys.unraisablehook", seen.append)
    before = __import__("sys").unraisablehook
    src = tmp_path / "a.csv"
    src.write_bytes(b"uid,t,kind,minutes,amount,plan\nu1,1,play,5,,\n" + "müller,1,play,5,,,x\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"cannot read as csv: .*row 2: Expected 6 columns, got 7.*; that row is "
                                          r"not UTF-8 text either \(a Latin-1 or Windows-1252 export\?\)"):
        list(iter_batches(src, mapping()))
    assert seen == [] and __import__("sys").unraisablehook is before
    stray = tmp_path / "c.csv"  # one NUL byte in an early cell: that row is rejected, the file is read
    stray.write_bytes(f"uid,t,kind,minutes,amount,plan\nu\x001,{T0},play,5,,\n".encode()
                      + b"".join(f"u2,{T0 + i},play,5,,\n".encode() for i in range(50)))
    assert [b.data.num_rows for b in iter_batches(stray, mapping())] == [51]
    env = Env(tmp_path / "data")
    try:
        s = env.run([stray], mapping())
        assert s.rejected_rows == 1 and s.events_by_type["session"] == 50, s.rejected
    finally:
        env.close()
    good = tmp_path / "b.csv"  # a malformed row of UTF-8 text is still one rejected row, not a failed file
    good.write_text("uid,t,kind,minutes,amount,plan\nu1,1,play,5,,\nmüller,1,play,5,,,x\n")
    assert [r.row for b in iter_batches(good, mapping()) for r in b.invalid] == [2]


@pytest.mark.parametrize(("sep", "yaml"), [(";", "';'"), ("\t", '"\\t"'), ("|", "'|'")])
def test_a_header_split_on_another_delimiter_names_the_setting(tmp_path, sep, yaml) -> None:
    """A semicolon- or tab-separated export read with the default ',' is one column; the
    error says which delimiter the header holds and the exact YAML that reads it (a tab
    must be double-quoted in YAML), and that setting does read it."""
    src = tmp_path / "a.csv"
    src.write_text(sep.join(HEADER) + "\n" + sep.join(["u1", str(T0), "play", "5", "", ""]) + "\n")
    with pytest.raises(SourceError, match=re.escape(f"the header has one column split on ',' but contains {sep!r}: "
                                                    f"set `csv: {{delimiter: {yaml}}}` in the mapping")):
        list(iter_batches(src, mapping()))
    fixed = yaml_load(f"csv: {{delimiter: {yaml}}}")
    batches = list(iter_batches(src, mapping(**fixed)))
    assert batches[0].data.column("uid").to_pylist() == ["u1"]


def test_repeated_rows_are_counted_and_kept(env, tmp_path) -> None:
    rows = _plays(10)
    rows += [dict(rows[2]), dict(rows[2]), dict(rows[7])]
    rows.append(dict(rows[3], minutes=11))  # same user, time and type, another value: not a repeat
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], mapping())
    assert s.duplicates == 3 and s.as_dict()["duplicate_rows"] == 3
    assert s.events_by_type["session"] == 14  # kept: each row is its own event


@pytest.mark.parametrize("chunk", [100_000, 7])  # 7: runs of equal (user, time, type) cross chunks
def test_count_duplicates_matches_a_plain_loop(chunk, monkeypatch) -> None:
    monkeypatch.setattr(duplicates, "CHUNK", chunk)
    rng = np.random.default_rng(3)
    n = 400
    u, t, c = rng.integers(0, 4, n), rng.integers(0, 6, n), rng.integers(0, 2, n)
    body = rng.integers(0, 2, n)
    raw = [b'{"event_id":"k-%d","v":%d}' % (i, body[i]) for i in range(n)]
    seen, expected = set(), 0
    for i in range(n):
        key = (u[i], t[i], c[i], body[i])
        expected += key in seen
        seen.add(key)
    assert count_duplicates(u, t, c, lambda idx: [raw[i] for i in idx]) == expected


def test_an_overlapping_later_import_reports_the_events_the_engine_will_not_apply(env, tmp_path) -> None:
    rows = sample_rows(users=3, days=10)
    first = env.run([rows_to_csv(rows[: len(rows) // 2], tmp_path / "half.csv")], mapping())
    assert first.late == 0
    grown = env.run([rows_to_csv(rows, tmp_path / "all.csv")], mapping())  # a re-export that grew
    half_end = max(r["t"] for r in rows[: len(rows) // 2])
    assert grown.late == sum(r["t"] < half_end - 86400 for r in rows if r["kind"] in ("play", "pay", "quit"))
    assert grown.late > 0 and grown.as_dict()["late_events"] == grown.late


def test_cli_never_hides_rejection_reasons_and_warns_about_late_events(tmp_path) -> None:
    rows = _plays(40)
    bad = [{"uid": ""}, {"t": "x"}, {"t": ""}, {"minutes": "abc"}, {"minutes": "-3"}, {"kind": ""},
           {"uid": " u1"}, {"uid": "u\u200b1"}, {"uid": "x" * 129}, {"uid": "u\x01"}]
    rows += [_plays(1, **b)[0] for b in bad]
    m = write_mapping(tmp_path / "m.yaml", max_rejected_share=0.5)
    data = ["--data-dir", str(tmp_path / "d")]
    r = CliRunner().invoke(app, [*data, "import", str(rows_to_csv(rows, tmp_path / "a.csv")), "-m", str(m)])
    assert r.exit_code == 0, r.output
    assert "2 more reasons (all: --json, or `churn tail --dlq`)" in r.output
    older = [dict(row, t=row["t"] - 30 * 86400) for row in _plays(5)]
    r = CliRunner().invoke(app, [*data, "import", str(rows_to_csv(older, tmp_path / "b.csv", HEADER)), "-m", str(m)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "count them as late" in r.output.replace("\n", " ")
    assert datetime.fromtimestamp(older[0]["t"], UTC) < datetime.fromtimestamp(T0, UTC)
