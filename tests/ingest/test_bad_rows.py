"""A bad row is one dead-lettered row wherever it sits in the file, never a refused file
(issue 16 item 6): columns are read as text, not typed from the first block; short, long,
non-UTF-8 and non-JSON rows are dead-lettered with their row number; a value missing from
a ``values`` map rejects the row; control characters in a user id reject it. A ``"`` never
closed is one rejected row per line it swallowed, not a file silently cut short."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline.ingest import RejectedShareError, readers
from pipeline.ingest.errors import SourceError

from .helpers import DELETE, HEADER, T0, Env, mapping, rows_to_csv


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def _rows(n: int) -> list[dict]:
    return [{"uid": f"u{i % 40}", "t": T0 + 60 * i, "kind": "play", "minutes": 10 + i % 7} for i in range(n)]


def _dead(env: Env) -> dict[int, dict]:
    return {d["source_offset"]: d for d in env.dead_letters()}


def _event_rows(env: Env) -> set[int]:
    return {int(e["event_id"].rsplit("-", 1)[1]) for e in env.events() if not e["event_id"].endswith("signup")}


@pytest.mark.parametrize("bad", [{"t": "not-a-time"}, {"minutes": "abc"}, {"t": "1767225600.5x"}])
@pytest.mark.parametrize("where", ["first", "last"])
def test_one_bad_value_is_one_rejected_row_at_any_position(tmp_path, monkeypatch, bad, where) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 4096)  # many blocks: the bad row is far from the first
    rows = _rows(3_000)
    at = 0 if where == "first" else len(rows) - 1
    rows[at] = rows[at] | bad
    env = Env(tmp_path / where)
    try:
        s = env.run([rows_to_csv(rows, tmp_path / f"{where}.csv")], mapping())
        assert s.rows_read == 3_000 and s.rejected_rows == 1, s.rejected
        if "minutes" in bad:  # the reason says what is wrong, not msgspec's "Expected `float`, got `str`"
            assert s.rejected == {"invalid session: not a number at $.watch_minutes": 1}
        assert list(_dead(env)) == [at + 1]  # data row numbers: the header is not counted
        assert len(_event_rows(env)) == 2_999 and at + 1 not in _event_rows(env)
    finally:
        env.close()


def test_short_long_and_non_utf8_rows_are_dead_lettered_with_their_row_numbers(env, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "BLOCK_BYTES", 2048)
    rows = _rows(500)
    path = rows_to_csv(rows, tmp_path / "a.csv")
    lines = path.read_bytes().split(b"\n")  # lines[k] is data row k (lines[0] is the header)
    lines[3] = b"u1,1767225600"  # short
    lines[200] = lines[200] + b",extra,fields"  # long
    lines[201] = b"u\xff\xfe1," + lines[201].split(b",", 1)[1]  # not UTF-8
    lines[499] = b"u2,1767225600,play"  # short, in the last block
    path.write_bytes(b"\n".join(lines))
    s = env.run([path], mapping())
    assert s.rows_read == 500
    assert s.rejected == Counter({"row: 2 fields, the header has 6": 1, "row: 8 fields, the header has 6": 1,
                                  "row: not valid UTF-8": 1, "row: 3 fields, the header has 6": 1})  # fmt: skip
    dl = _dead(env)
    assert sorted(dl) == [3, 200, 201, 499]
    assert dl[3]["field"] == "row" and json.loads(dl[3]["value"]) == {"row": "u1,1767225600"}
    assert "\ufffd" in dl[201]["value"]  # the row as read, undecodable bytes replaced
    got = _event_rows(env)
    assert got == set(range(1, 501)) - {3, 200, 201, 499}  # every other row, under its own row number


def test_json_lines_bad_lines_and_type_changes_are_rows_not_file_errors(env, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(readers, "JSON_BATCH_ROWS", 100)
    rows = [r | {"amount": None, "plan": None} for r in _rows(400)]
    lines = [json.dumps(r).encode() for r in rows]
    lines[5] = b'{"uid": "u1", "t": 17672'  # cut off
    lines[6] = b"[1, 2]"
    lines[7] = b'{"uid": "u\xff1", "t": 1767225600, "kind": "play"}'
    lines[350] = json.dumps(rows[350] | {"uid": 12345, "minutes": "12.5"}).encode()  # types change late: fine
    lines[351] = json.dumps(rows[351] | {"t": "soon"}).encode()
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    s = env.run([path], mapping())
    assert s.rows_read == 400
    assert s.rejected == Counter({"row: not valid JSON": 1, "row: not a JSON object": 1, "row: not valid UTF-8": 1,
                                  "timestamp: not a number": 1})  # fmt: skip
    assert sorted(_dead(env)) == [6, 7, 8, 352]
    assert _event_rows(env) == set(range(1, 401)) - {6, 7, 8, 352}
    assert any(e["user_id"] == "12345" and e.get("watch_minutes") == 12.5 for e in env.events())


def test_a_value_missing_from_a_values_map_rejects_the_row(env, tmp_path) -> None:
    rows = [r | {"plan": "b"} for r in _rows(50)]
    rows[10]["plan"] = "gold"
    rows[11]["plan"] = ""  # empty: the default fills it
    m = mapping(signup={"synthesize": "first_event",
                        "plan": {"column": "plan", "values": {"b": "basic", "p": "premium"}, "default": "basic"}})
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv", HEADER)], m)
    assert s.rejected == Counter({"signup.plan: value not in values": 1})
    assert list(_dead(env)) == [11]


def test_control_characters_in_user_ids_are_rejected(env, tmp_path) -> None:
    rows = _rows(20)
    rows[4]["uid"] = "u\x01x"
    rows[5]["uid"] = "u\x7fy"
    rows[6]["uid"] = "u\u0085z"  # C1 next line
    rows[7]["uid"] = "üser-ok"
    s = env.run([rows_to_csv(rows, tmp_path / "a.csv")], mapping())
    assert s.rejected == Counter({"user_id: contains control characters": 3})
    assert sorted(_dead(env)) == [5, 6, 7]
    assert "üser-ok" in {e["user_id"] for e in env.events()}


def _with_line(path, at: int, line: bytes):
    """``path`` with data row ``at`` (1-based) replaced by ``line``."""
    lines = path.read_bytes().split(b"\n")  # lines[k] is data row k (lines[0] is the header)
    lines[at] = line
    path.write_bytes(b"\n".join(lines))
    return path


# a `"` never closed: in `minutes` the row has too few fields as read; in `plan`, the last column, it
# has the header's six, so before it was imported as one row whose `plan` held the rest of the file
UNTERMINATED = {"minutes": b'u10,%d,play,"12 min,,', "plan": b'u10,%d,pay,,7.99,"b unterminated'}


@pytest.mark.parametrize("column", sorted(UNTERMINATED))
def test_an_unterminated_quote_counts_every_line_it_swallows_and_refuses_the_file(env, tmp_path, column) -> None:
    """A `"` never closed read every following line into one field: the import said
    `imported`, 50 rows read, 1 rejected, and the other 150 rows were gone uncounted."""
    path = _with_line(rows_to_csv(_rows(200), tmp_path / "a.csv"), 50, UNTERMINATED[column] % (T0 + 3000))
    with pytest.raises(RejectedShareError, match=r"151 of 200 rows rejected .*max_rejected_share 1.0%") as exc:
        env.run([path], mapping(max_rejected_share=DELETE))  # the default, 1 %
    s = exc.value.summary
    assert s.status == "refused" and s.rows_read == 200
    assert s.rejected == Counter({readers._UNTERMINATED: 1, readers._SWALLOWED: 150})
    assert env.events() == [] and env.dead_letters() == []  # nothing written


@pytest.mark.parametrize("column", sorted(UNTERMINATED))
def test_rows_before_an_unterminated_quote_import_and_the_rest_are_rejected_rows(env, tmp_path, column) -> None:
    rows = _rows(200)
    path = _with_line(rows_to_csv(rows, tmp_path / "a.csv"), 50, UNTERMINATED[column] % (T0 + 3000))
    s = env.run([path], mapping(), max_rejected_share=0.9)
    assert s.status == "imported" and s.rows_read == 200 and s.rejected_rows == 151 and not s.dropped
    assert sum(n for t, n in s.events_by_type.items() if t != "signup") + s.rejected_rows == 200
    dl = _dead(env)
    assert sorted(dl) == list(range(50, 201)) and _event_rows(env) == set(range(1, 50))  # each row once
    assert dl[50]["reason"] == readers._UNTERMINATED and json.loads(dl[50]["value"])["row"].startswith("u10,")
    assert dl[51]["reason"] == readers._SWALLOWED  # each swallowed line dead-lettered as it is
    r = rows[50]  # data row 51
    assert json.loads(dl[51]["value"]) == {"row": f"{r['uid']},{r['t']},play,{r['minutes']},,"}


def test_a_quote_closed_lines_later_rejects_the_lines_between_and_numbers_the_rest_on(env, tmp_path) -> None:
    """A stray `"` closed by the next quoted field: the rows in between were one row (one
    rejection), and the rows after it were numbered as if those lines were not there."""
    path = rows_to_csv(_rows(200), tmp_path / "a.csv")
    _with_line(path, 50, b'u10,"%d,play,12,,' % (T0 + 3000))
    _with_line(path, 60, b'u20,%d,play,"12",,' % (T0 + 3600))
    s = env.run([path], mapping(), max_rejected_share=0.9)
    assert s.rows_read == 200
    assert s.rejected == Counter({"row: 4 fields, the header has 6, a quoted field runs over several lines "
                                  "(an unterminated quote?)": 1, readers._SPANNED: 10})  # fmt: skip
    assert sorted(_dead(env)) == list(range(50, 61))
    assert _event_rows(env) == set(range(1, 201)) - set(range(50, 61))  # the rows after under their own numbers


def test_an_unterminated_quote_far_from_the_end_refuses_the_file_saying_why(env, tmp_path, monkeypatch) -> None:
    """The reader holds at most a block and a half of one row: a quote open for longer
    refuses the file (before: Arrow's "straddling object straddles two block boundaries")."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 2048)
    path = _with_line(rows_to_csv(_rows(500), tmp_path / "a.csv"), 50, UNTERMINATED["minutes"] % T0)
    with pytest.raises(SourceError, match=r'a double quote \("\) that is never closed\?.*nothing was imported'):
        env.run([path], mapping())
    assert env.events() == [] and env.dead_letters() == []


def test_quoted_fields_with_line_breaks_still_import_every_row(env, tmp_path, monkeypatch) -> None:
    """RFC 4180: a quoted field may hold line breaks; the row is one row, under its own
    number, however the file's blocks fall (before, a field over a block boundary failed the file)."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 1024)
    rows = [r | {"note": f"line one, of {i}\nline two\r\n\n\"quoted\" three" if i % 3 else "plain"}
            for i, r in enumerate(_rows(600))]
    path = rows_to_csv(rows, tmp_path / "a.csv", [*HEADER, "note"])
    assert path.read_bytes().count(b"\n") > 1_500  # physical lines: many rows span several
    s = env.run([path], mapping())
    assert s.rows_read == 600 and s.rejected_rows == 0 and env.dead_letters() == []
    assert _event_rows(env) == set(range(1, 601))
    got = {int(e["event_id"].rsplit("-", 1)[1]): e for e in env.events() if not e["event_id"].endswith("signup")}
    assert all(got[i + 1]["user_id"] == r["uid"] and got[i + 1]["watch_minutes"] == r["minutes"]
               for i, r in enumerate(rows))  # fmt: skip
