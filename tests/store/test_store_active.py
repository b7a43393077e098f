"""Cancelled users: their rows stay (``active`` false) but no reader counts them at risk."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import inspect, text, update

from pipeline.errors import InvalidRowError
from pipeline.store import SCHEMA_VERSION, Store
from pipeline.store import schema as s
from tests.store.helpers import score, to_v7_history


def _three(store: Store) -> None:
    store.upsert_scores([
        score("gone", 0.97, 5, plan=None, monthly_revenue=0.0, active=False),
        score("hot", 0.80, 5, plan="premium", monthly_revenue=20.0, active=True),
        score("calm", 0.10, 5, plan="basic", monthly_revenue=10.0),  # active by default
    ])  # fmt: skip


def test_cancelled_users_are_kept_but_not_counted_at_risk(store: Store):
    _three(store)
    assert list(store.current_scores(top_k=None).user_id) == ["hot", "calm"]
    every = store.current_scores(top_k=None, active_only=False)
    assert list(every.user_id) == ["gone", "hot", "calm"]
    assert every.set_index("user_id").active.to_dict() == {"gone": False, "hot": True, "calm": True}
    summary = store.score_summary(high_risk=0.5)
    assert (summary.users, summary.high_risk_users, summary.churned_users) == (2, 1, 1)
    assert summary.high_risk_monthly_revenue == 20.0
    assert summary.expected_monthly_loss == pytest.approx(0.8 * 20 + 0.1 * 10)
    assert summary.mean_risk == pytest.approx(0.45)
    hist = store.risk_histogram(10)
    assert hist.users.sum() == 2 and hist.users.iloc[9] == 0 and hist.users.iloc[8] == 1
    assert len(store.score_history(["gone"])) == 1  # history is kept


def test_a_resubscribed_user_is_active_again_and_a_cancel_applies(store: Store):
    _three(store)
    store.upsert_scores([
        score("gone", 0.30, 9, plan="basic", monthly_revenue=10.0, active=True),
        score("hot", 0.85, 9, plan=None, monthly_revenue=0.0, active=False),
    ])  # fmt: skip
    assert list(store.current_scores(top_k=None).user_id) == ["gone", "calm"]
    assert store.score_summary().churned_users == 1


def test_bad_active_flag_is_one_clear_line(store: Store):
    with pytest.raises(
        InvalidRowError, match=r"active of score row 0 \(user 'u1'\) is 'yes': use True"
    ):
        store.upsert_scores([score("u1", 0.5, active="yes")])


def test_version_2_store_migrates_marking_cancelled_rows_inactive(make_store):
    """A store written before ``active`` existed: rows the stream wrote for cancelled
    users (no plan, revenue 0) become inactive, the others stay active; the history's
    time index (write cost, no reader needs it) is dropped."""
    old = make_store()
    old.upsert_scores([
        score("gone", 0.9, plan=None, monthly_revenue=0.0),
        score("paying", 0.7, plan="basic", monthly_revenue=9.0),
        score("unknown", 0.6),  # no plan and no revenue given: not the cancelled mark
    ])  # fmt: skip
    to_v7_history(old)
    with old._write() as conn:  # back to what version 2 looked like
        q = old._bulk.table(s.scores)
        conn.execute(text(f"ALTER TABLE {q} DROP COLUMN active"))
        h = old._bulk.table(s.score_history)
        conn.execute(text(f"CREATE INDEX ix_score_history_time ON {h} (time)"))
        conn.execute(update(s.schema_version).values(version=2))
    assert old.schema_version() == 2
    new = make_store()
    assert new.schema_version() == SCHEMA_VERSION >= 3
    with new.engine.connect() as conn:
        owner = conn.schema_for_object(s.score_history)
        # v3 dropped the time index; v8 carried the keyed table into segments
        assert not inspect(conn).has_table("score_history", schema=owner)
    rows = new.current_scores(top_k=None, active_only=False).set_index("user_id").active
    assert rows.to_dict() == {"gone": False, "paying": True, "unknown": True}
    assert make_store().schema_version() == SCHEMA_VERSION  # reopening: nothing more to do


def test_version_3_store_migrates_history_to_one_point_per_interval(make_store):
    """Version 3 sampled history by a rule and kept ``history_time``/``history_risk`` on
    ``scores`` (SQLite: triggers appended the points). Version 4 keyed points by interval:
    old points are kept (each in a bucket of its own time), the columns and triggers go."""
    old = make_store()
    old.upsert_scores([score("a", 0.4, 5), score("b", 0.6, 6)])
    before = old.score_history()  # (the v3 table below holds the same points)
    to_v7_history(old)
    with old._write() as conn:  # back to what version 3 looked like
        scores_t, hist = old._bulk.table(s.scores), old._bulk.table(s.score_history)
        conn.execute(text(f"DROP TABLE {hist}"))
        conn.execute(text(f"CREATE TABLE {hist} (user_id VARCHAR(200) NOT NULL, "
                          f"time {'TIMESTAMPTZ' if old.dialect == 'postgresql' else 'VARCHAR(32)'} "
                          "NOT NULL, risk FLOAT NOT NULL, model_version VARCHAR(100) NOT NULL, "
                          "PRIMARY KEY (user_id, time))"))  # fmt: skip
        conn.execute(text(f"INSERT INTO {hist} SELECT user_id, features_time, risk, model_version "
                          f"FROM {scores_t}"))  # fmt: skip
        for col in ("history_time VARCHAR(32)", "history_risk FLOAT"):
            conn.execute(text(f"ALTER TABLE {scores_t} ADD COLUMN {col}"))
        if old.dialect == "sqlite":
            conn.execute(text("CREATE TRIGGER scores_history_on_insert AFTER INSERT ON scores "
                              "WHEN NEW.history_time IS NOT NULL BEGIN SELECT 1; END"))  # fmt: skip
        conn.execute(update(s.schema_version).values(version=3))
    new = make_store()
    assert new.schema_version() == SCHEMA_VERSION >= 4
    pd.testing.assert_frame_equal(new.score_history(), before)
    with new.engine.connect() as conn:
        owner = conn.schema_for_object(s.scores)
        cols = {c["name"] for c in inspect(conn).get_columns("scores", schema=owner)}
        assert not cols & {"history_time", "history_risk"}
        if new.dialect == "sqlite":
            assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")).scalar() == 0
    new.upsert_scores([score("a", 0.5, 7)])  # a newer score of the same day replaces a's point
    assert list(new.score_history(["a"]).risk) == [0.4, 0.5]  # the old point is its own bucket
