"""End to end on the shipped sample: `churn import` -> train flow -> `churn stream` (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

EXAMPLES = PROJECT_ROOT / "docs" / "examples"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    from churn.cli.app import app

    data = tmp_path_factory.mktemp("data")
    r = CliRunner().invoke(app, ["--data-dir", str(data), "--partitions", "2", "import",
                                 str(EXAMPLES / "music_events.csv.gz"), "--mapping",
                                 str(EXAMPLES / "music_mapping.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["status"] == "imported" and summary["events_by_type"]["cancel"] > 100
    assert 0 < summary["rejected_share"] < 0.05
    return data


@pytest.fixture(scope="module")
def trained(prefect_harness, imported, tmp_path_factory):
    from flows.train import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"
    out = train(data_dir=str(imported), horizon_days=14, every_days=7, seed=1, shap_sample=100,
                candidates=["logistic", "xgboost"], leaky_control=False, tracking_uri=uri)
    return out, uri


def test_train_flow_on_imported_events_logs_metrics_and_registers(trained) -> None:
    import mlflow

    from pipeline import registry

    out, uri = trained
    rows = {r["name"]: r for r in out["table"]}
    assert {"logistic", "xgboost"} <= set(rows) and "oracle" not in rows  # no simulator hazard for imports
    assert rows["logistic"]["test_roc_auc"] > 0.6  # the sample carries signal
    assert out["registered_version"] == "1" and out["gate"]["decision"] == "promoted"
    mlflow.set_tracking_uri(uri)
    parent = mlflow.get_run(out["parent_run_id"])
    assert parent.data.tags["data_source"] == "import:music-streaming"
    assert parent.data.tags["churn_definition"] == "cancel"
    assert "payments_30d" in parent.data.tags["features_from_defaults"].split(",")
    children = mlflow.search_runs([out["experiment_id"]], f"tags.mlflow.parentRunId = '{out['parent_run_id']}'")
    assert children["metrics.test_roc_auc"].notna().all()
    bundle = registry.load_bundle(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    source = {f["name"]: f["source"] for f in bundle.feature_registry["features"]}
    # a feature the source cannot supply is not in the topic's feature spec (so not in the model)
    assert "payments_30d" not in source and source["sessions_7d"] == "events"
    spec = bundle.feature_registry["feature_spec"]
    assert spec["version"] == bundle.feature_set_version and "payments_30d" not in spec["names"]
    assert source["tenure_days"].startswith("derived:")
    # the sample logs no charges: its money figures use assumed prices, and say so
    assert "ASSUMED, not this source's prices" in out["revenue_basis"]


def test_stream_scores_the_imported_topic(trained, imported) -> None:
    from churn.cli.app import app
    from pipeline.log import open_log
    from pipeline.store import Store

    _, uri = trained
    r = CliRunner().invoke(app, ["--data-dir", str(imported), "stream", "--until-caught-up", "--no-autoscale",
                                 "--max-seconds", "180", "--tracking-uri", uri, "--batch-size", "2000"])
    assert r.exit_code == 0, r.output
    assert "caught up" in r.output and "champion v1" in r.output
    with open_log(imported / "log", "events") as log:
        assert log.committed("churn-stream") == {p: log.end_offset(p) for p in range(log.num_partitions)}
    with Store(f"sqlite:///{imported / 'churn.db'}") as store:
        scores = store.current_scores(top_k=None)
        assert len(scores) > 300 and (scores["model_version"] == "1").all()  # the active users
        assert scores["risk"].between(0, 1).all()
