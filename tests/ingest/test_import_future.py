"""Issue 16 item 1, import side: a row dated far ahead of the clock is rejected as future."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.clock import FakeClock

from .helpers import IMPORT_NOW, T0, Env, mapping, rows_to_csv, sample_rows

YEAR_2099 = 4_070_908_800  # 2099-01-01T00:00:00Z


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path / "data")
    yield e
    e.close()


def test_rows_dated_after_the_clock_plus_skew_are_dead_lettered_as_future(env, tmp_path) -> None:
    rows = sample_rows(users=5, days=20)
    now = int(IMPORT_NOW.timestamp())
    ahead = [
        {"uid": "u1", "t": YEAR_2099, "kind": "play", "minutes": 3},  # the probe's poison
        {"uid": "u2", "t": now + 2 * 86_400, "kind": "play", "minutes": 3},  # two days ahead
    ]
    near = {"uid": "u3", "t": now + 3_600, "kind": "play", "minutes": 3}  # within the skew
    s = env.run([rows_to_csv(rows + ahead + [near], tmp_path / "a.csv")], mapping())
    future = [r for r in s.rejected if r.startswith("timestamp: future")]
    assert len(future) == 1 and s.rejected[future[0]] == 2
    written = env.events()
    assert max(e["ts"] for e in written) < "2027-01-02"  # nothing from 2099 reached the log
    assert sum(e["user_id"] == "u3" and e["ts"].startswith("2027-01-01") for e in written) == 1
    dead = [d for d in env.dead_letters() if d["reason"].startswith("timestamp: future")]
    assert len(dead) == 2 and any(str(YEAR_2099) in d["value"] for d in dead)


def test_skew_is_configurable_and_the_clock_injected(tmp_path) -> None:
    env = Env(tmp_path / "data")
    try:
        env.clock = FakeClock(IMPORT_NOW - timedelta(days=365))  # 2026-01-01
        rows = [{"uid": "u1", "t": T0 + d * 86_400, "kind": "play", "minutes": 1} for d in range(10)]
        path = rows_to_csv(rows, tmp_path / "a.csv")
        s = env.run([path], mapping(), max_future_skew_hours=5 * 24)
        assert s.rejected == {"timestamp: future (later than the clock plus max_future_skew_hours)": 4}
        assert len(env.events()) - s.synthesized.total() == 6
    finally:
        env.close()


def test_the_mapping_sets_the_skew_and_an_option_overrides_it(tmp_path) -> None:
    """The skew was fixed at one day: a source dated ahead of the clock (an export from a
    zone the clock is behind, a planned schedule) could not be imported at all."""
    rows = [{"uid": "u1", "t": T0 + d * 86_400, "kind": "play", "minutes": 1} for d in range(10)]
    path = rows_to_csv(rows, tmp_path / "a.csv")
    runs = [("default", None, None, 24.0, 8), ("mapping", 120, None, 120.0, 4), ("option", 120, 0, 0.0, 9)]
    for name, in_mapping, option, hours, future in runs:
        env = Env(tmp_path / name)
        try:
            env.clock = FakeClock(IMPORT_NOW - timedelta(days=365))  # 2026-01-01: a day after the first row's
            m = mapping(max_rejected_share=1, **({} if in_mapping is None else {"max_future_skew_hours": in_mapping}))
            s = env.run([path], m, max_future_skew_hours=option)
            assert s.max_future_skew_hours == s.as_dict()["max_future_skew_hours"] == hours
            assert s.rejected_rows == future, name
        finally:
            env.close()


def test_a_refusal_for_future_rows_points_at_the_clock_and_the_skew_not_the_mapping(tmp_path) -> None:
    """Too many rows rejected, most of them as future: the mapping is not the problem; the
    message says where the fix is (time zone, clock, max_future_skew_hours)."""
    from pipeline.ingest import RejectedShareError

    env = Env(tmp_path / "data")
    try:
        env.clock = FakeClock(IMPORT_NOW - timedelta(days=365))  # every row is ahead of this clock
        rows = [{"uid": "u1", "t": T0 + d * 86_400, "kind": "play", "minutes": 1} for d in range(10)]
        with pytest.raises(RejectedShareError) as exc:
            env.run([rows_to_csv(rows, tmp_path / "a.csv")], mapping())
        message = str(exc.value)
        assert "time zone" in message and "max_future_skew_hours (24 now" in message, message
        assert "fix the mapping" not in message and "--max-rejected-share" in message
    finally:
        env.close()
