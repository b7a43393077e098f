"""The Model page shows realised performance beside the training-time test figures, and
says "labels mature after the horizon (N days)" while nothing has matured (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from dashboard import data, figures
from pipeline.store import Store
from tests.dashboard.test_app import run_page

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _registry(root, horizon: int = 14) -> str:
    import mlflow
    from mlflow import MlflowClient

    from pipeline import registry

    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    exp = registry.configure(uri)
    try:
        client = MlflowClient()
        client.create_registered_model(registry.MODEL_NAME)
        run = client.create_run(exp)
        client.create_model_version(registry.MODEL_NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
                                    tags={"horizon_days": str(horizon), "test_roc_auc": "0.812", "candidate": "xgboost"})
        client.set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, "1")
    finally:
        mlflow.set_tracking_uri(None)
    return uri


def _rows(days: int = 6) -> pd.DataFrame:
    day = pd.date_range("2026-03-01", periods=days, freq="D", tz="UTC")
    auc = pd.Series([0.80, 0.79, 0.74, 0.70, 0.68, 0.66][:days])
    return pd.DataFrame({"day": day, "model_version": "1", "horizon_days": 14, "n": 2_900, "positives": 80,
                         "base_rate": 80 / 2_900, "base_rate_low": 0.022, "base_rate_high": 0.034,
                         "roc_auc": auc, "roc_auc_low": auc - 0.03, "roc_auc_high": auc + 0.03,
                         **{f"{m}{s}": 0.1 for m in ("pr_auc", "lift_10", "ece") for s in ("", "_low", "_high")},
                         "mean_risk": 0.03})


@pytest.fixture
def env(tmp_path):
    (tmp_path / "data").mkdir()
    uri = _registry(tmp_path)
    data.registry_loader().get(uri, wait=True)
    return tmp_path, {"CHURN_DATA_DIR": str(tmp_path / "data"), "CHURN_MLFLOW_TRACKING_URI": uri}


def test_before_any_day_matured_the_page_says_when_labels_mature(env, use_env):
    root, e = env
    Store(f"sqlite:///{root / 'data' / 'churn.db'}").close()
    use_env(e)
    at = run_page("model")
    assert "Realised performance" in [s.value for s in at.subheader]
    info = " ".join(i.value for i in at.info)
    assert "labels mature after the horizon (14 days)" in info


def test_matured_days_are_a_time_series_beside_the_test_figure(env, use_env):
    root, e = env
    with Store(f"sqlite:///{root / 'data' / 'churn.db'}") as store:
        store.record_realised(_rows(), matured_at=NOW, computed_at=NOW)
    use_env(e)
    at = run_page("model")
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    chart = next(s for s in specs if "Realised ROC-AUC by scoring day" in s)
    assert "v1 realised" in chart and "v1 at training (test window)" in chart and "0.812" in chart
    assert "cancels of the following 14 days" in " ".join(c.value for c in at.caption)
    at.selectbox(key="realised_metric").set_value("ece").run()
    assert any("Realised ECE" in c.proto.spec for c in at.get("plotly_chart"))


def test_figure_without_rows_says_nothing_matured():
    fig = figures.realised_figure(pd.DataFrame(), "roc_auc", "ROC-AUC")
    assert fig.layout.annotations[0].text == "no scoring day has matured yet"
    fig = figures.realised_figure(_rows(), "roc_auc", "ROC-AUC", test_value=None)
    assert [t.name for t in fig.data] == ["v1 95% interval", "v1 realised"]
    assert data.horizon_of(pd.DataFrame({"version": ["1"], "horizon_days": [float("nan")]}), "1") is None
