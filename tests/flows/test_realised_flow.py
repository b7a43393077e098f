"""The ``realised`` flow end to end on a Prefect test server: log + store + registry in,
matured days stored and logged to the champion's MLflow run out; served daily."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from flows.realised import CRON, DEPLOYMENT, realised
from flows.serve import deployments
from pipeline.features.timebase import DAY_US
from pipeline.monitoring.lifecycle import read_lifecycle
from pipeline.store import Store
from pipeline.testing import simulated_log


def test_realised_flow_stores_and_logs_matured_days(prefect_harness, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from pipeline import registry

    monkeypatch.delenv("CHURN_STORE_URL", raising=False)
    data = tmp_path / "data"
    log = simulated_log(data / "log", users=300, days=40, partitions=2, seed=5)
    try:
        lc = read_lifecycle(log)
    finally:
        log.close()
    # one score per subscribed user per day (from day 30), higher for those about to cancel
    start = (int(lc.signups["t"].max()) // DAY_US - 39) * DAY_US
    rng = np.random.default_rng(0)
    rows = []
    for d in range(30, 40):
        t = start + d * DAY_US + 3_600_000_000
        soon = set(lc.cancels[(lc.cancels.t > t) & (lc.cancels.t <= t + 7 * DAY_US)].user_id)
        for u in sorted(set(lc.signups.user_id)):
            rows.append({"user_id": u, "risk": float(np.clip(rng.normal(0.5 if u in soon else 0.2, 0.1), 0, 1)),
                         "model_version": "1", "features_time": datetime.fromtimestamp(t / 1e6, tz=UTC)})
    with Store(f"sqlite:///{data / 'churn.db'}") as store:
        store.append_score_history(rows)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    exp = registry.configure(uri)
    client = MlflowClient()
    client.create_registered_model(registry.MODEL_NAME)
    run = client.create_run(exp)
    client.create_model_version(registry.MODEL_NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                tags={"horizon_days": "3"})
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, "1")
    try:
        out = realised(data_dir=str(data), tracking_uri=uri, n_boot=10)
        assert out["horizon_days"] == 3 and out["rows"] > 0 and out["mlflow_metrics"]["1"] > 0
        with Store(f"sqlite:///{data / 'churn.db'}") as store:
            stored = store.realised_performance()
        assert len(stored) == out["rows"] and (stored.horizon_days == 3).all()
        steps = {m.step for m in MlflowClient().get_metric_history(run.info.run_id, "realised_n")}
        assert steps == {int(pd.Timestamp(d).value // (DAY_US * 1000)) for d in stored["day"]}
        again = realised(data_dir=str(data), tracking_uri=uri, n_boot=10)
        assert again["rows"] == 0  # nothing new matured
    finally:
        mlflow.set_tracking_uri(None)


def test_the_daily_deployment_is_served():
    d = next(d for d in deployments() if d.name == DEPLOYMENT)
    assert d.schedules[0].schedule.cron == CRON and d.concurrency_limit == 1
