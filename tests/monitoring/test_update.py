"""The realised-performance job: matured days computed once, stored, read back; nothing
before the horizon has passed (with the date it will); rows logged to the MLflow run of
the version that produced the scores, step = scoring day."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from pipeline.clock import FakeClock
from pipeline.features.timebase import DAY_US
from pipeline.monitoring.lifecycle import Lifecycle
from pipeline.monitoring.update import log_to_mlflow, update_realised
from pipeline.store import Store

T0 = 20_500 * DAY_US
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def scored_world(store: Store, users: int = 300, days: int = 20, seed: int = 0) -> Lifecycle:
    """Users subscribed before T0; a fifth cancel during the 20 days; one score per user
    per day, higher for those about to cancel; version 1 before day 10, 2 after."""
    rng = np.random.default_rng(seed)
    signups, cancels, rows = [], [], []
    for i in range(users):
        u = f"u{i:03d}"
        signups.append((u, T0 - DAY_US))
        cancel = T0 + int(rng.integers(1, days * DAY_US)) if rng.random() < 0.2 else None
        if cancel is not None:
            cancels.append((u, cancel))
        for d in range(days):
            at = T0 + d * DAY_US + 3_600_000_000
            if cancel is not None and at > cancel:
                break
            soon = cancel is not None and cancel - at <= 5 * DAY_US
            rows.append({"user_id": u, "risk": float(np.clip(rng.normal(0.6 if soon else 0.2, 0.15), 0, 1)),
                         "model_version": "1" if d < 10 else "2", "features_time": _dt(at)})
    store.append_score_history(rows)
    return Lifecycle.of(signups, cancels, T0 + days * DAY_US)


def test_matured_days_are_computed_once_and_read_back(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock(NOW))
    lc = scored_world(store)
    first = update_realised(store, None, 5, FakeClock(NOW), n_boot=20, lifecycle=lc)
    days = sorted(set(first.rows["day"]))
    assert len(days) == 15 and days[0] == pd.Timestamp(_dt(T0 + DAY_US)) and days[-1] == pd.Timestamp(_dt(T0 + 15 * DAY_US))
    assert "15 scoring day(s) matured" in first.note
    stored = store.realised_performance()
    assert len(stored) == len(first.rows) and set(stored.model_version) == {"1", "2"}
    assert (stored.horizon_days == 5).all() and (stored.matured_at == pd.Timestamp(_dt(T0 + 20 * DAY_US))).all()
    good = stored.dropna(subset=["roc_auc"])
    assert len(good) >= 10 and good.roc_auc.mean() > 0.8 and (good.roc_auc > 0.6).all()  # the scores do rank the cancels that followed
    assert (good.roc_auc_low <= good.roc_auc).all() and (good.roc_auc <= good.roc_auc_high).all()
    again = update_realised(store, None, 5, FakeClock(NOW), n_boot=20, lifecycle=lc)
    assert again.rows.empty and "0 scoring day(s)" in again.note  # nothing new matured
    redo = update_realised(store, None, 5, FakeClock(NOW), n_boot=20, lifecycle=lc, recompute=True)
    assert len(redo.rows) == len(stored) and len(store.realised_performance()) == len(stored)
    assert len(store.realised_performance(model_version="2")) == (stored.model_version == "2").sum()
    store.close()


def test_before_the_horizon_passed_it_says_when_labels_mature(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock(NOW))
    lc = scored_world(store, days=20)
    upd = update_realised(store, None, 30, FakeClock(NOW), lifecycle=lc)
    assert upd.rows.empty and store.realised_performance().empty
    start = _dt(T0 + DAY_US).date()
    assert upd.note == (f"labels mature after the horizon (30 days): the first scoring day {start} matures on "
                        f"{_dt(T0 + 31 * DAY_US).date()} (event time)")
    with pytest.raises(ValueError, match="horizon_days=0"):
        update_realised(store, None, 0, FakeClock(NOW), lifecycle=lc)
    store.close()


def test_rows_are_logged_to_the_run_of_their_model_version(tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from pipeline import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    store = Store(f"sqlite:///{tmp_path / 'churn.db'}", clock=FakeClock(NOW))
    lc = scored_world(store)
    rows = update_realised(store, None, 5, FakeClock(NOW), n_boot=10, lifecycle=lc).rows
    store.close()
    exp = registry.configure(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    try:
        client = MlflowClient()
        client.create_registered_model(registry.MODEL_NAME)
        runs = {}
        for v in ("1", "2"):
            run = client.create_run(exp)
            runs[v] = run.info.run_id
            client.create_model_version(registry.MODEL_NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        logged = log_to_mlflow(rows, client)
        assert set(logged) == {"1", "2"} and all(n > 0 for n in logged.values())
        hist = client.get_metric_history(runs["2"], "realised_roc_auc")
        mine = rows[(rows.model_version == "2")].dropna(subset=["roc_auc"])
        assert sorted(m.step for m in hist) == sorted(int(d.value // (DAY_US * 1000)) for d in mine["day"])
        assert {round(m.value, 9) for m in hist} == {round(v, 9) for v in mine["roc_auc"]}
        assert client.get_metric_history(runs["1"], "realised_n")  # counts too
        assert log_to_mlflow(rows.assign(model_version="99"), client) == {}  # an unknown version: skipped
    finally:
        mlflow.set_tracking_uri(None)
