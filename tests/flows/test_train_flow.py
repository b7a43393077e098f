"""The train flow end to end under Prefect's test harness, then the gate across two runs."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline.features.registry import FEATURE_SET_VERSION

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(prefect_harness, small_history, tracking_uri):
    from flows.train import train

    return train(data_dir=str(small_history), horizon_days=14, every_days=7, seed=3, shap_sample=200,
                 tracking_uri=tracking_uri)


def test_flow_reports_candidates_beside_oracle_and_leaky_control(first_run) -> None:
    rows = {r["name"]: r for r in first_run["table"]}
    assert {"xgboost", "logistic", "rule", "oracle", "leaky"} <= set(rows)
    assert rows["oracle"]["role"] == rows["leaky"]["role"] == "reference"
    assert rows["leaky"]["test_roc_auc"] > 0.9  # features after the label window: near-perfect
    honest = max(rows[n]["test_roc_auc"] for n in ("xgboost", "logistic", "rule"))
    assert 0.6 < honest < rows["leaky"]["test_roc_auc"]  # so the honest pipeline is not leaking
    assert rows["xgboost"]["test_lift_10_ceiling"] == pytest.approx(1 / max(rows["xgboost"]["test_base_rate"], 0.1))
    assert first_run["best"] in ("xgboost", "logistic", "rule")
    assert first_run["revenue"]["baseline_churners"] > 0 and first_run["revenue"]["revenue_saved"] > 0
    assert first_run["shap"]["rows"] == 200
    assert set(first_run["seconds"]) >= {"snapshots", "cv", "fit", "shap", "logging"}


def test_flow_selects_by_rolling_origin_cv_and_says_how_much_data_it_had(first_run) -> None:
    sel = first_run["selection"]
    assert sel["folds"] >= 2 and sel["positives"] > 0 and first_run["best"] in sel["message"]
    assert f"{sel['folds']} fold(s)" in sel["message"]
    folds = {(r["candidate"], r["fold"]) for r in first_run["cv_table"]}
    assert {c for c, _ in folds} >= {"xgboost", "logistic", "rule", "oracle"}
    assert len({f for c, f in folds if c == "xgboost"}) == sel["folds"]
    for r in first_run["cv_table"]:  # every fold trains on earlier cutoffs only and scores churners
        assert r["eval_positives"] >= 0 and (r["candidate"] == "oracle" or r["train_rows"] > 0)
    rows = {r["name"]: r for r in first_run["table"]}
    assert rows["xgboost"]["cv_folds"] == sel["folds"] and rows["xgboost"]["cv_roc_auc"] > 0.6
    assert sel["regret_test_auc"] >= 0
    assert first_run["calibration"]["method"] in ("identity", "platt", "isotonic")
    assert 0 <= first_run["calibration"]["test_ece"] < 0.05


def test_flow_logs_one_child_run_per_model_under_one_parent(first_run, tracking_uri, tmp_path) -> None:
    mlflow.set_tracking_uri(tracking_uri)
    parent = first_run["parent_run_id"]
    children = mlflow.search_runs([first_run["experiment_id"]], f"tags.mlflow.parentRunId = '{parent}'")
    names = set(children["tags.mlflow.runName"])
    assert {"xgboost", "logistic", "rule", "oracle", "leaky"} <= names
    assert children["metrics.test_roc_auc"].notna().all() and children["metrics.test_ece"].notna().all()
    scored = children[children["tags.mlflow.runName"] != "leaky"]
    assert scored["metrics.cv_roc_auc"].notna().all() and scored["metrics.cv_roc_auc_std"].notna().all()
    client = mlflow.MlflowClient()
    xgb = children[children["tags.mlflow.runName"] == "xgboost"]["run_id"].iloc[0]
    assert {"plots", "tables", "shap"} <= {a.path for a in client.list_artifacts(xgb)}
    assert "tables/cv_folds.csv" in {a.path for a in client.list_artifacts(xgb, "tables")}
    folds = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=xgb, artifact_path="tables/cv_folds.csv",
                                                          dst_path=str(tmp_path)))
    assert len(folds) == first_run["selection"]["folds"]
    shap_files = {a.path for a in client.list_artifacts(xgb, "shap")}
    assert {"shap/report.html", "shap/shap_beeswarm.png", "shap/top_risk_reasons.parquet"} <= shap_files
    assert "plots/test_roc.png" in {a.path for a in client.list_artifacts(parent, "plots")}
    summary = {a.path for a in client.list_artifacts(parent, "summary")}
    assert {"summary/comparison.csv", "summary/revenue_sweep.csv", "summary/alias_history.csv",
            "summary/cv_folds.csv", "summary/selection.txt"} <= summary


def test_every_candidate_run_is_comparable_in_mlflow(first_run, tracking_uri) -> None:
    """Issue 19: model training experiment; each candidate with a description, its datasets and
    a model with signature and input example; the parent with its candidates table; the
    registered version's description says what the gate decided, on which window."""
    from pipeline import registry

    mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.get_experiment(first_run["experiment_id"])
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    client = mlflow.MlflowClient()
    parent = first_run["parent_run_id"]
    children = mlflow.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    window = "..".join(first_run["windows"]["test"])
    for _, row in children[children["tags.role"] == "candidate"].iterrows():
        run = client.get_run(row["run_id"])
        assert window in run.data.tags["mlflow.note.content"]
        contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in run.inputs.dataset_inputs}
        assert contexts == {"training", "test"}
        models = mlflow.search_logged_models(experiment_ids=[exp.experiment_id],
                                             filter_string=f"source_run_id = '{row['run_id']}'", output_format="list")
        assert len(models) == 1
        info = mlflow.models.get_model_info(models[0].model_uri)
        assert info.signature is not None and info.saved_input_example_info is not None
    assert "candidates.json" in {a.path for a in client.list_artifacts(parent)}
    assert f"Registered as churn v{first_run['registered_version']}" in client.get_run(parent).data.tags[
        "mlflow.note.content"]
    mv = client.get_model_version(registry.MODEL_NAME, first_run["registered_version"])
    assert mv.description.startswith("**PROMOTED**") and window in mv.description and mv.tags["gate.window"] == window


def test_first_model_becomes_champion_with_its_feature_set(first_run, tracking_uri, small_history) -> None:
    from pipeline import registry

    mlflow.set_tracking_uri(tracking_uri)
    assert first_run["registered_version"] == "1"
    assert first_run["gate"]["decision"] == "promoted"
    champ = registry.champion_version()
    assert str(champ.version) == "1" and champ.tags[registry.FEATURE_SET_TAG] == FEATURE_SET_VERSION
    assert champ.tags[registry.HORIZON_TAG] == "14" and champ.tags[registry.TOPIC_TAG] == "events"
    assert float(champ.tags[registry.BASE_RATE_TAG]) == pytest.approx(first_run["train_base_rate"], abs=1e-6)
    assert champ.tags["calibration"] == first_run["calibration"]["method"]
    bundle = registry.load_bundle("models:/churn@champion")
    p = bundle.model.predict_proba(bundle.reference)
    assert np.all((p >= 0) & (p <= 1)) and bundle.feature_set_version == FEATURE_SET_VERSION
    contrib = bundle.model.contributions(bundle.reference.head(20))  # SHAP reasons still work
    assert list(contrib.columns[:-1]) == list(bundle.model.features)


def test_a_worse_retrain_is_rejected_and_history_kept(first_run, prefect_harness, small_history, tracking_uri) -> None:
    from flows.train import train
    from pipeline import registry

    second = train(data_dir=str(small_history), horizon_days=14, every_days=7, seed=3, candidates=["rule"],
                   leaky_control=False, shap_sample=100, tracking_uri=tracking_uri)
    assert second["best"] == "rule" and second["registered_version"] == "2"
    assert second["gate"]["decision"] == "rejected" and second["gate"]["champion_version"] == "1"
    mlflow.set_tracking_uri(tracking_uri)
    assert str(registry.champion_version().version) == "1"
    hist = registry.alias_history()
    assert hist["version"].tolist() == ["1"]
    mv = mlflow.MlflowClient().get_model_version("churn", "2")
    tags = mv.tags
    assert tags["gate.decision"] == "rejected" and "gate.champion.roc_auc" in tags
    window = "..".join(second["windows"]["test"])  # both scores on the challenger's test window, said so
    assert mv.description.startswith("**REJECTED**") and f"the test window **{window}**" in mv.description
    assert "| challenger v2 | champion v1 |" in mv.description


def test_a_retrain_with_another_horizon_is_refused_unless_forced(first_run, prefect_harness, small_history,
                                                                 tracking_uri) -> None:
    from flows.train import train
    from pipeline import registry

    kw = {"data_dir": str(small_history), "every_days": 7, "seed": 3, "candidates": ["logistic"],
          "leaky_control": False, "shap_sample": 100, "tracking_uri": tracking_uri}
    other = train(horizon_days=7, **kw)
    assert other["gate"]["decision"] == "rejected" and "horizon 7 d differs" in other["gate"]["reason"]
    mlflow.set_tracking_uri(tracking_uri)
    assert str(registry.champion_version().version) == "1"
    forced = train(horizon_days=7, force=True, **kw)
    assert forced["gate"]["decision"] == "promoted" and forced["gate"]["forced"]
    assert str(registry.champion_version().version) == forced["registered_version"]
