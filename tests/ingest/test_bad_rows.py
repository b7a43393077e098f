"""A bad row is one dead-lettered row wherever it sits in the file, never a refused file
(issue 16 item 6): columns are read as text, not typed from the first block; short, long,
non-UTF-8 and non-JSON rows are dead-lettered with their row number; a value missing from
a ``values`` map rejects the row; control characters in a user id reject it."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pipeline.ingest import readers

from .helpers import HEADER, T0, Env, mapping, rows_to_csv


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
