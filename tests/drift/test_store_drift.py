"""Drift runs in the store: recorded, idempotent, readable (SQLite and PostgreSQL), and
a version-1 database migrates to version 2 on open."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import inspect

from pipeline.clock import FakeClock
from pipeline.drift.check import DriftResult, FeatureDrift
from pipeline.errors import InvalidRowError
from pipeline.store import SCHEMA_VERSION, Store
from pipeline.store import schema as s
from pipeline.store.migrations import MIGRATIONS
from tests.drift.helpers import T0
from tests.needs import pg_unavailable
from tests.store.conftest import PG_URLS, drop_schema, pg_url

W = "Wasserstein distance (normed)"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        st = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock(T0))
        yield st
        st.close()
        return
    url = pg_url()
    if url is None:
        pg_unavailable(PG_URLS)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    st = Store(url, schema=schema, clock=FakeClock(T0))
    try:
        yield st
    finally:
        st.close()
        drop_schema(url, schema)


def result(minutes: float, share: float, pred: float | None = 0.05, version: str = "3") -> DriftResult:
    feats = (FeatureDrift("sessions_7d", W, 0.31, 0.1, True), FeatureDrift("tenure_days", W, 0.02, 0.1, False))
    at = T0 + timedelta(minutes=minutes)
    return DriftResult(at, at - timedelta(hours=6), at - timedelta(minutes=1), version, 9_000, 5_000,
                       1 if share > 0 else 0, share, share >= 0.5,
                       None if pred is None else FeatureDrift("risk", W, pred, 0.1, pred >= 0.1), feats, 3.2)


def test_runs_and_features_are_recorded_and_read_back(store):
    rid = store.record_drift_run(result(0, 0.5), level="Critical", reasons=["50% drifted"], source="w-0")
    assert store.record_drift_run(result(0, 0.5), level="Critical", source="w-0") == rid  # idempotent
    store.record_drift_run(result(10, 0.0, pred=None), level="Healthy", reasons=["0% of features drifted"])
    runs = store.drift_runs()
    assert list(runs.level) == ["Critical", "Healthy"] and len(runs) == 2
    first = runs.iloc[0]
    assert first.run_id == rid and first.source == "w-0" and first.rows == 9_000 and first.features == 2
    assert bool(first.dataset_drift) and first.prediction_score == pytest.approx(0.05)
    assert first.reasons == ["50% drifted"] and first.time == T0 and str(first.window_start.tz) == "UTC"
    assert runs.prediction_score.isna().tolist() == [False, True]
    feats = store.drift_features()
    assert len(feats) == 4 and feats.drifted.tolist() == [True, False, True, False]
    assert feats.feature.tolist()[:2] == ["sessions_7d", "tenure_days"] and feats.method.iloc[0] == W
    assert len(store.drift_runs(since=T0 + timedelta(minutes=5))) == 1
    assert len(store.drift_features(since=T0 + timedelta(minutes=5))) == 2
    assert len(store.drift_features(run_id=rid)) == 2
    assert store.prune_drift(T0 + timedelta(minutes=5)) == {"drift_features": 2, "drift_runs": 1}
    assert len(store.drift_runs()) == 1


def test_bad_runs_are_rejected(store):
    with pytest.raises(InvalidRowError, match="level 'Bad'"):
        store.record_drift_run(result(0, 0.5), level="Bad")
    with pytest.raises(InvalidRowError, match="finite"):
        store.record_drift_run(result(0, float("nan")), level="Healthy")
    assert store.drift_runs().empty


def test_a_version_1_store_migrates_to_version_2(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    st = Store(url, clock=FakeClock(T0))
    with st.engine.begin() as conn:  # make it look like a database written by version 1
        s.drift_features.drop(conn)
        s.drift_runs.drop(conn)
        conn.execute(s.schema_version.update().values(version=1))
    st.close()
    assert SCHEMA_VERSION >= 2 and 2 in MIGRATIONS  # later versions migrate on top
    st = Store(url, clock=FakeClock(T0))
    try:
        assert st.schema_version() == SCHEMA_VERSION
        assert {"drift_runs", "drift_features"} <= set(inspect(st.engine).get_table_names())
        st.record_drift_run(result(0, 0.0), level="Healthy")
        assert len(st.drift_runs()) == 1
    finally:
        st.close()


def test_skipped_and_failed_runs_have_a_status_and_a_reason(store):
    store.record_drift_run(result(0, 0.5), level="Critical", source="w-0")
    rid = store.record_drift_status(time=T0 + timedelta(minutes=1), model_version="3", status="skipped",
                                    reason="window has 458 rows, fewer than min_rows=500", rows=458, source="w-0")
    store.record_drift_status(time=T0 + timedelta(minutes=2), model_version="3", status="failed",
                              reason="BrokenProcessPool: the check process died", source="w-0")
    assert store.drift_runs().status.tolist() == ["checked"]
    every = store.drift_runs(status=None)
    assert every.status.tolist() == ["checked", "skipped", "failed"] and every.run_id.iloc[1] == rid
    assert every.status_reason.tolist()[1:] == ["window has 458 rows, fewer than min_rows=500",
                                                "BrokenProcessPool: the check process died"]
    assert every.rows.tolist() == [9_000, 458, 0] and every.level.tolist() == ["Critical", "Skipped", "Failed"]
    assert len(store.drift_runs(status=["skipped", "failed"])) == 2
    with pytest.raises(InvalidRowError, match="needs its reason"):
        store.record_drift_status(time=T0, model_version="3", status="skipped", reason=" ")
    with pytest.raises(InvalidRowError, match="use 'skipped' or 'failed'"):
        store.record_drift_status(time=T0, model_version="3", status="checked", reason="x")
    with pytest.raises(InvalidRowError, match="status"):
        store.drift_runs(status="pending")


def test_a_version_3_store_migrates_keeping_its_runs_as_checked(tmp_path):
    """Schema version 4 adds drift_runs.status/status_reason and realised_performance to
    an existing database; the runs recorded before are 'checked'."""
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    st = Store(url, clock=FakeClock(T0))
    st.record_drift_run(result(0, 0.5), level="Critical")
    with st.engine.begin() as conn:  # make it look like a version-3 database
        s.realised_performance.drop(conn)
        conn.execute(text("ALTER TABLE drift_runs DROP COLUMN status_reason"))
        conn.execute(text("ALTER TABLE drift_runs DROP COLUMN status"))
        conn.execute(s.schema_version.update().values(version=3))
    st.close()
    assert SCHEMA_VERSION >= 4 and 4 in MIGRATIONS
    st = Store(url, clock=FakeClock(T0))
    try:
        assert st.schema_version() == SCHEMA_VERSION
        assert "realised_performance" in inspect(st.engine).get_table_names()
        runs = st.drift_runs(status=None)
        assert runs.status.tolist() == ["checked"] and runs.status_reason.isna().all()
    finally:
        st.close()
