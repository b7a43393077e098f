"""Crash and corruption probes of the importer's own state (``import/<topic>/``): a lost
ledger must not let a file be imported twice, and a damaged ledger or ``users.txt`` is one
error naming the file, not a traceback."""

from __future__ import annotations

import os

import pytest

from pipeline.ingest.errors import SourceError

from .helpers import T0, Env, mapping, rows_to_csv, sample_rows


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def _later_rows() -> list[dict]:
    """Another source file: new users, after the sample's days."""
    return [{"uid": f"n{u}", "t": T0 + (30 + d) * 86400 + 60 * u, "kind": "play", "minutes": 5}
            for d in range(3) for u in range(3)]  # fmt: skip


def test_a_lost_ledger_does_not_import_a_file_a_second_time(env, tmp_path) -> None:
    """Repro: ledger.json deleted, then the same file imported again (as a user re-running a
    script would): exit 0 and every row appended a second time (8,275 duplicate events, the
    same event ids), with only a warning about late events."""
    a = rows_to_csv(sample_rows(), tmp_path / "a.csv")
    first = env.run([a], mapping())
    held = len(env.events())
    assert first.status == "imported" and held == first.written > 0
    env.ledger.path.unlink()
    with pytest.raises(SourceError, match=r"already holds events of .*a\.csv .*does not record that import") as err:
        env.run([a], mapping())
    assert str(env.ledger.path) in str(err.value) and "Restore the ledger" in str(err.value)
    assert len(env.events()) == held  # nothing written twice
    # a file never imported goes in as usual (and writes a new ledger) ...
    b = rows_to_csv(_later_rows(), tmp_path / "b.csv")
    assert env.run([b], mapping()).status == "imported"
    held = len(env.events())
    # ... and that ledger does not make the first file importable again
    with pytest.raises(SourceError, match=r"already holds events of .*a\.csv"):
        env.run([a], mapping())
    assert len(env.events()) == held
    assert env.run([b], mapping()).status == "already imported"


@pytest.mark.parametrize(
    "damage",
    [b"\xff\xfe\x00garbage", b"[]", b"{}", b'{"imports": {"x": 5}}', b'{"imports": [1, 2]}'],
    ids=["not-utf8", "list", "no-imports", "entry-not-object", "imports-not-object"],
)
def test_a_damaged_ledger_is_one_error_naming_it(env, tmp_path, damage) -> None:
    """Repro: a ledger with bytes flipped (not UTF-8) or overwritten with other JSON ended
    `churn import` in a UnicodeDecodeError / TypeError / KeyError / AttributeError traceback."""
    a = rows_to_csv(sample_rows(), tmp_path / "a.csv")
    env.run([a], mapping())
    held = len(env.events())
    env.ledger.path.write_bytes(damage)
    with pytest.raises(SourceError, match="import ledger .*ledger.json is unreadable"):
        env.run([a], mapping())
    assert len(env.events()) == held


def test_a_users_file_that_is_not_utf8_is_one_error_naming_it(env, tmp_path) -> None:
    """Repro: users.txt (users already signed up) with garbage appended: a new import ended in
    a UnicodeDecodeError traceback."""
    env.run([rows_to_csv(sample_rows(), tmp_path / "a.csv")], mapping())
    held = len(env.events())
    with open(env.ledger.users_path, "ab") as f:
        f.write(os.urandom(64) + b"\xff\xfe")
    with pytest.raises(SourceError, match=r"users\.txt .*is unreadable"):
        env.run([rows_to_csv(_later_rows(), tmp_path / "b.csv")], mapping())
    assert len(env.events()) == held
