"""Current scores and their history (one point per user per interval): idempotent bulk upserts, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from pipeline.errors import InvalidRowError, StoreError
from pipeline.store import HistoryPolicy, Store, WriteResult
from pipeline.store import schema as s
from tests.store.helpers import T0, reference_history, score

REASONS = [{"feature": "failed_payments_30d", "contribution": 0.41}]


def table(store: Store) -> list[tuple]:
    df = store.current_scores(top_k=None)
    return sorted(zip(df.user_id, df.risk, df.model_version, df.features_time, strict=True))


def test_upsert_then_read_round_trips_every_column(store: Store, clock):
    rows = [
        score("u1", 0.91, 5, reasons=REASONS, plan="premium", monthly_revenue=19.99, partition=2),
        score("u2", 0.10, 6, plan="basic", monthly_revenue=8.99),
        score("u3", 0.55, 7),
    ]
    assert store.upsert_scores(rows) == WriteResult(scores=3, history=3, stale=0, duplicates=0)
    df = store.current_scores(top_k=None)
    assert list(df.user_id) == ["u1", "u3", "u2"]  # highest risk first
    top = df.iloc[0]
    assert top.risk == 0.91 and top.model_version == "1" and top.plan == "premium"
    assert top.reasons == REASONS and top.monthly_revenue == 19.99 and top.partition == 2
    assert top.features_time == pd.Timestamp(T0 + timedelta(minutes=5))
    assert str(df.features_time.dtype) == "datetime64[us, UTC]"
    assert top.updated_at == pd.Timestamp(clock.now())
    low = df.set_index("user_id").loc["u3"]
    assert low.reasons is None and low.plan is None and pd.isna(low.monthly_revenue)
    assert list(store.current_scores(top_k=2).user_id) == ["u1", "u3"]
    assert list(store.current_scores(top_k=None, min_risk=0.5).user_id) == ["u1", "u3"]


def test_columns_with_one_value_per_batch_land_on_every_row(store: Store, clock):
    """Columns with the same value in every row (bound once per statement on SQLite) and
    columns that vary, in batches of several statements plus a remainder: each row reads
    back with its own values."""
    rng = np.random.default_rng(11)
    plans = ["basic", "standard", "premium"]
    want = {}
    for b, (plan_varies, part_varies, active_varies) in enumerate(
        [(False, False, False), (True, False, True), (False, True, False), (True, True, True)]
    ):
        rows = []
        for i in range(237):
            user = f"u{b}-{int(rng.integers(0, 10**6)):07d}-{i}"
            row = score(user, float(rng.random()), b * 1000 + i, model=f"v{b}",
                        plan=plans[i % 3] if plan_varies else "standard",
                        partition=i % 4 if part_varies else 2,
                        active=bool(i % 2) if active_varies else True,
                        monthly_revenue=float(i % 5), reasons=REASONS if i % 7 == 0 else None)  # fmt: skip
            rows.append(row)
            want[user] = (row["risk"], f"v{b}", pd.Timestamp(row["features_time"]), row["plan"],
                          row["partition"], row["active"], row["monthly_revenue"], row["reasons"])  # fmt: skip
        store.upsert_scores(rows)
    df = store.current_scores(top_k=None, active_only=False)
    got = {
        u: (r, m, t, p, int(pt), bool(a), rev, reasons)
        for u, r, m, t, p, pt, a, rev, reasons in zip(
            df.user_id, df.risk, df.model_version, df.features_time, df.plan, df.partition, df.active,
            df.monthly_revenue, df.reasons, strict=True,
        )
    }
    assert got == want
    with store.engine.connect() as conn:  # no reasons is SQL NULL, not the '' it is bound as on SQLite
        none = s.scores.c.reasons.is_(None)
        kinds = conn.execute(select(none, func.count()).group_by(none)).all()
        assert sorted(kinds) == [(False, sum(r[-1] is not None for r in want.values())),
                                 (True, sum(r[-1] is None for r in want.values()))]  # fmt: skip
    assert set(df.updated_at) == {pd.Timestamp(clock.now())}


def test_rewriting_a_batch_is_a_no_op(store: Store):
    batch = [score(f"u{i}", i / 10, i) for i in range(10)]
    store.upsert_scores(batch)
    before, history = table(store), store.score_history()
    again = store.upsert_scores(batch)  # e.g. re-processed after a crash before the commit
    # the replay appends its points again (history counts points written); reads unchanged
    assert again.scores == 10 and again.history == 10 and again.stale == 0
    assert table(store) == before
    pd.testing.assert_frame_equal(store.score_history(), history)


def test_older_features_never_replace_newer_ones(store: Store):
    store.upsert_scores([score("u1", 0.8, minutes=10)])
    res = store.upsert_scores([score("u1", 0.1, minutes=5), score("u2", 0.3, minutes=5)])
    # both rows are written as points; u1's older one never reads back (a newer is stored)
    assert res == WriteResult(scores=1, history=2, stale=1, duplicates=0)
    assert store.score_history(["u1"]).risk.tolist() == [0.8]
    assert table(store) == [
        ("u1", 0.8, "1", pd.Timestamp(T0 + timedelta(minutes=10))),
        ("u2", 0.3, "1", pd.Timestamp(T0 + timedelta(minutes=5))),
    ]
    # same features time: a re-score (e.g. a new champion) replaces it
    store.upsert_scores([score("u1", 0.7, minutes=10, model="2")])
    assert table(store)[0][:3] == ("u1", 0.7, "2")


def test_a_user_twice_in_a_batch_keeps_the_newest_row(store: Store):
    res = store.upsert_scores(
        [score("u1", 0.2, 3), score("u1", 0.9, 9), score("u1", 0.5, 4), score("u1", 0.6, 9)]
    )
    assert res.duplicates == 3 and res.scores == 1
    assert table(store) == [("u1", 0.6, "1", pd.Timestamp(T0 + timedelta(minutes=9)))]


def _as(prefix: str, rows: list[dict]) -> list[dict]:
    return [{**r, "user_id": prefix + r["user_id"]} for r in rows]


def _table_of(store: Store, prefix: str) -> list[tuple]:
    return [(u.removeprefix(prefix), *rest) for u, *rest in table(store) if u.startswith(prefix)]


def test_a_frame_writes_the_same_as_rows(store: Store):
    rows = [score(f"u{i}", (i * 37 % 100) / 100, i, plan="basic", monthly_revenue=9.99)
            for i in range(50)]  # fmt: skip
    store.upsert_scores(_as("rows-", rows))
    store.upsert_scores(pd.DataFrame(_as("frame-", rows)))
    assert _table_of(store, "rows-") == _table_of(store, "frame-")
    assert len(_table_of(store, "rows-")) == 50


def test_a_batch_written_in_slices_is_the_same(store: Store, monkeypatch: pytest.MonkeyPatch):
    """SQLite converts and sends a batch a slice at a time (one transaction): slices of 7
    rows write what one slice writes, the newest row of each user kept."""
    from pipeline.store import bulk

    rows = [score(f"u{i % 23}", (i * 13 % 100) / 100, i % 11, plan="basic") for i in range(60)]
    store.upsert_scores(_as("whole-", rows))
    monkeypatch.setattr(bulk, "SLICE_ROWS", 7)
    assert store.upsert_scores(_as("sliced-", rows)).scores == 23
    assert _table_of(store, "whole-") == _table_of(store, "sliced-")
    assert len(_table_of(store, "sliced-")) == 23


def test_one_batch_equals_the_same_rows_one_by_one(store: Store):
    rows = [score(f"u{i % 7}", (i * 13 % 100) / 100, (i * 5) % 17) for i in range(40)]
    store.upsert_scores(_as("batch-", rows), history=None)
    for r in _as("single-", rows):
        store.upsert_scores([r], history=None)
    assert _table_of(store, "batch-") == _table_of(store, "single-")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (score("u1", math.nan), r"risk of score row 1 \(user 'u1'\) is nan.*\[0, 1\]"),
        (score("u1", 1.5), r"risk .* is 1.5"),
        (score("u1", -0.1), r"risk .* is -0.1"),
        (score("u1", "high"), r"risk of score row 1 .* is 'high'"),
        ({**score("u1", 0.5), "features_time": datetime(2026, 1, 1)}, r"features_time of row 1 .*timezone-aware"),
        ({**score("u1", 0.5), "features_time": None}, r"features_time of row 1"),
        ({**score("u1", 0.5), "user_id": ""}, r"user_id of score row 1"),
        ({**score("u1", 0.5), "model_version": None}, r"model_version of score row 1"),
        (score("u1", 0.5, reasons=[{"feature": "x", "contribution": math.nan}]), r"reasons .* not JSON"),
        (score("u1", 0.5, monthly_revenue=-3.0), r"monthly_revenue .* -3.0"),
        ({k: v for k, v in score("u1", 0.5).items() if k != "risk"}, r"score row 1 lacks 'risk'"),
    ],
)  # fmt: skip
def test_bad_rows_are_rejected_and_nothing_is_written(store: Store, row, match):
    with pytest.raises(InvalidRowError, match=match):
        store.upsert_scores([score("u0", 0.3), row])
    assert store.current_scores(top_k=None).empty


def test_nan_risk_in_a_frame_names_the_count(store: Store):
    frame = pd.DataFrame([score(f"u{i}", 0.5) for i in range(5)])
    frame.loc[[1, 3], "risk"] = np.nan
    with pytest.raises(InvalidRowError, match=r"row 1 \(user 'u1'\) is nan.*2 bad row\(s\)"):
        store.upsert_scores(frame)
    naive = pd.DataFrame([score("u1", 0.5)])
    naive["features_time"] = pd.to_datetime(naive.features_time).dt.tz_localize(None)
    with pytest.raises(InvalidRowError, match="naive datetime column"):
        store.upsert_scores(naive)


def test_history_keeps_each_users_newest_score_per_interval_step_by_step(store: Store):
    hourly = HistoryPolicy(interval_s=3600)
    h0, h1, h2 = (T0 + timedelta(hours=h) for h in range(3))
    steps = [  # (minutes, risk, model, u1's points read back after it: (hour, minutes, risk, model))
        (0, 0.50, "1", [(h0, 0, 0.50, "1")]),  # first score in hour 0
        (1, 0.53, "1", [(h0, 1, 0.53, "1")]),  # newer in hour 0: replaces the point
        (1, 0.53, "1", [(h0, 1, 0.53, "1")]),  # the same row again (a replay): nothing changes
        (0, 0.99, "1", [(h0, 1, 0.53, "1")]),  # older than hour 0's point: kept out
        (1, 0.54, "1", [(h0, 1, 0.54, "1")]),  # same time, another risk: the later write wins
        (59, 0.58, "1", [(h0, 59, 0.58, "1")]),
        (60, 0.59, "1", [(h0, 59, 0.58, "1"), (h1, 60, 0.59, "1")]),  # hour 1: a new point
        (61, 0.59, "2", [(h0, 59, 0.58, "1"), (h1, 61, 0.59, "2")]),  # new model, same hour
        (125, 0.40, "2", [(h0, 59, 0.58, "1"), (h1, 61, 0.59, "2"), (h2, 125, 0.40, "2")]),
    ]
    for m, risk, model, want in steps:
        res = store.upsert_scores([score("u1", risk, m, model)], history=hourly)
        assert res.history == 1  # every write appends its point; reads keep the newest
        got = store.score_history(["u1"])
        assert list(zip(got.time, got.risk, got.model_version, strict=True)) == [
            (pd.Timestamp(T0 + timedelta(minutes=mm)), r, v) for _, mm, r, v in want
        ], (m, risk, model)
    hist = store.score_history(["u1"])
    assert list(hist.risk) == [0.58, 0.59, 0.40]
    assert list(hist.model_version) == ["1", "2", "2"]
    assert list(hist.time) == [pd.Timestamp(T0 + timedelta(minutes=m)) for m in (59, 61, 125)]
    assert store.upsert_scores([score("u1", 0.9, 185)], history=None).history == 0
    assert len(store.score_history()) == 3


def test_history_does_not_depend_on_how_rows_are_grouped(store: Store):
    """A killed-and-replayed stream writes the same rows grouped differently (and some
    twice): the points must be those of one clean pass."""
    rng = np.random.default_rng(5)
    rows = [
        score(f"g{u}", float(rng.random()), float(m))
        for m in range(0, 3 * 24 * 60, 37)
        for u in rng.choice(20, 5, replace=False)
    ]
    hourly = HistoryPolicy(interval_s=3600)
    store.upsert_scores(rows, history=hourly)
    clean = store.score_history().sort_values(["user_id", "time"], ignore_index=True)
    # regroup: random cut points, every group replayed once more, in processing order
    cuts = sorted(rng.choice(len(rows), 12, replace=False).tolist())
    for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        store.upsert_scores(rows[a:b], history=hourly)
        store.upsert_scores(rows[max(0, a - 7) : b], history=hourly)
    again = store.score_history().sort_values(["user_id", "time"], ignore_index=True)
    pd.testing.assert_frame_equal(again, clean)


def test_history_filters_and_explicit_appends(store: Store):
    store.upsert_scores([score("a", 0.2, 0), score("b", 0.3, 10)])
    daily = HistoryPolicy()
    assert store.append_score_history([score("a", 0.25, 5), score("a", 0.2, 0)]) == 1
    assert store.append_score_history([score("a", 0.99, 4)]) == 1  # written; never read: older
    assert store.append_score_history([score("a", 0.3, 24 * 60)], history=daily) == 1
    hist = store.score_history(["a"])
    assert list(zip(hist.risk, hist.time, strict=True)) == [
        (0.25, pd.Timestamp(T0 + timedelta(minutes=5))), (0.3, pd.Timestamp(T0 + timedelta(days=1)))
    ]  # fmt: skip
    assert list(store.score_history(since=T0 + timedelta(minutes=5)).user_id) == ["a", "b", "a"]


def test_bad_history_interval_says_how_to_fix():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="86400 for one point per user per day"):
        HistoryPolicy(interval_s=0)


_row = st.tuples(
    st.sampled_from(["u1", "u2", "u3"]),
    st.integers(0, 24 * 60),  # minutes
    st.sampled_from([0.0, 0.04, 0.05, 0.1, 0.11, 0.5, 0.9, 1.0]),
    st.sampled_from(["1", "2"]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=st.lists(st.lists(_row, min_size=1, max_size=6), min_size=1, max_size=6),
       interval=st.sampled_from([60.0, 3600.0, 86400.0]))  # fmt: skip
def test_store_matches_a_plain_reference_of_the_rules(store: Store, batches, interval):
    prefix = f"x{abs(hash((str(batches), interval))) % 10**9}-"  # fresh users
    as_rows = [
        [score(prefix + u, risk, m, model) for u, m, risk, model in batch] for batch in batches
    ]
    for batch in as_rows:
        store.upsert_scores(batch, history=HistoryPolicy(interval))
    want_state, want_points = reference_history(as_rows, interval)
    users = sorted(want_state)
    cur = store.current_scores(top_k=None).set_index("user_id").loc[users]
    assert list(cur.risk) == [want_state[u]["risk"] for u in users]
    assert list(cur.features_time) == [pd.Timestamp(want_state[u]["features_time"]) for u in users]
    hist = store.score_history(users)
    got = {(u, t.to_pydatetime(), r, m) for u, t, r, m in hist.itertuples(index=False)}
    assert got == want_points


def test_summary_and_histogram(store: Store):
    rows = [
        score("a", 0.0, monthly_revenue=10.0),
        score("b", 0.25, monthly_revenue=10.0),
        score("c", 0.5, monthly_revenue=20.0, model="2"),
        score("d", 0.75),
        score("e", 1.0, 30, monthly_revenue=4.0),
    ]
    store.upsert_scores(rows)
    s = store.score_summary(high_risk=0.5)
    assert (s.users, s.high_risk_users) == (5, 3)
    assert s.mean_risk == pytest.approx(0.5)
    assert s.expected_monthly_loss == pytest.approx(0.25 * 10 + 0.5 * 20 + 4.0)
    assert s.high_risk_monthly_revenue == pytest.approx(24.0)
    assert s.features_time == T0 + timedelta(minutes=30) and s.features_time.tzinfo is not None
    assert s.model_versions == ("1", "2")
    h = store.risk_histogram(bins=4)
    assert list(h.users) == [1, 1, 1, 2]  # 0.25 opens bin 2; 1.0 is in the last bin
    assert list(h.bin_start) == [0.0, 0.25, 0.5, 0.75] and list(h.bin_end)[-1] == 1.0
    assert store.risk_histogram(bins=20).users.sum() == 5
    with pytest.raises(InvalidRowError, match="bins=0"):
        store.risk_histogram(bins=0)


def test_empty_store_reads(store: Store):
    assert store.current_scores().empty and store.score_history().empty
    s = store.score_summary()
    assert (s.users, s.mean_risk, s.features_time, s.model_versions) == (0, None, None, ())
    assert store.risk_histogram(bins=5).users.tolist() == [0] * 5
    assert store.upsert_scores([]) == WriteResult(0, 0, 0, 0)


def test_ten_thousand_rows_bulk_write(store: Store, backend):
    """Rate printed for the log (``-s``); the bound is loose on purpose (shared CI)."""
    n = 10_000
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "user_id": [f"user-{i:06d}" for i in rng.permutation(n)],
        "risk": rng.random(n),
        "model_version": "7",
        "features_time": pd.Series(pd.date_range(T0, periods=n, freq="s", tz=UTC)),
        "monthly_revenue": 9.99,
    })  # fmt: skip
    store.upsert_scores(frame)  # first write inserts
    frame["features_time"] += timedelta(hours=1)
    frame["risk"] = rng.random(n)
    import time

    t = time.perf_counter()
    res = store.upsert_scores(frame)
    dt = time.perf_counter() - t
    print(f"\n{backend['url'].split(':')[0]}: 10,000-row upsert (+history) {dt * 1000:.0f} ms")
    assert res.scores == n and res.history > 0
    assert dt < 5.0


def test_every_time_a_writer_accepts_reads_back(store: Store):
    """Years 1 and 9999 are valid features times (writers take any aware datetime): the
    readers return microsecond times, where pandas' nanoseconds would end in 2262."""
    first, last = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    store.upsert_scores([
        {"user_id": "old", "risk": 0.2, "model_version": "1", "features_time": first},
        {"user_id": "late", "risk": 0.3, "model_version": "1", "features_time": last},
    ])  # fmt: skip
    df = store.current_scores(top_k=None).set_index("user_id")
    assert df.loc["old", "features_time"] == pd.Timestamp(first)
    assert df.loc["late", "features_time"] == pd.Timestamp(last)
    hist = store.score_history().set_index("user_id")
    assert str(hist.time.dtype) == "datetime64[us, UTC]"
    assert hist.loc["old", "time"] == pd.Timestamp(first)
    assert hist.loc["late", "time"] == pd.Timestamp(last)
    assert str(store.score_history(["nobody"]).time.dtype) == "datetime64[us, UTC]"


def test_a_write_whose_history_fails_leaves_its_scores_unwritten_too(store: Store):
    """Scores and their history point are one transaction. On PostgreSQL the segment goes
    in the upsert's pipeline (``Bulk.upsert_scores``): its failure still undoes the
    scores already applied in the same round trip."""
    store.upsert_scores([score("a", 0.2, 1)])
    with store.engine.begin() as conn:  # the history table goes away under the store
        conn.execute(text(f"DROP TABLE {store._bulk.table(s.score_history_segments)}"))
    # SQLite: "no such table" is an OperationalError (StoreError); PostgreSQL's error from
    # the pipeline arrives as SQLAlchemy's ProgrammingError, as through SQLAlchemy
    with pytest.raises((StoreError, DatabaseError), match="score_history_segments"):
        store.upsert_scores([score("a", 0.9, 2), score("b", 0.5, 2)])
    assert table(store) == [("a", 0.2, "1", T0 + timedelta(minutes=1))]
    store.upsert_scores([score("c", 0.3, 3)], history=None)  # the store still writes
    assert [r[0] for r in table(store)] == ["a", "c"]

