"""What a user reads in MLflow (issue 19): the experiment opens on model training, candidate
runs carry clear headline metrics, a description and their datasets, the parent run a
candidates table with counts and money rounded, the registered version's description says
what the gate decided with both scores on one window. A real SQLite MLflow store per module."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import registry
from pipeline.evaluation import metrics
from pipeline.testing.training import split_by_cutoff, synthetic_snapshots
from pipeline.training import tracking
from pipeline.training.fit import fit_candidate
from pipeline.training.gate import GatePolicy
from pipeline.training.report import gate_line, gate_line_from_tags, version_description
from pipeline.training.specs import parse_spec

T0 = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = "2026-05-01..2026-05-29"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"
    yield uri, registry.configure(uri)
    mlflow.set_tracking_uri(None)
    mp.undo()


@pytest.fixture(scope="module")
def data():
    df, feats = synthetic_snapshots(users=1_000, cutoffs=4, seed=3)
    df = split_by_cutoff(df)
    return df[df.split == "train"], df[df.split == "val"], df[df.split == "test"], feats


def test_the_experiment_opens_on_model_training(store) -> None:
    uri, exp_id = store
    tags = mlflow.get_experiment(exp_id).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"  # not the GenAI overview
    assert tags["mlflow.experiment.primaryMetric.name"] == "test_roc_auc"
    mlflow.MlflowClient().delete_experiment_tag(exp_id, "mlflow.experimentKind")  # an experiment from before
    assert registry.configure(uri) == exp_id
    assert mlflow.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_candidate_run_has_headline_metrics_a_description_and_its_datasets(store, data, tmp_path) -> None:
    _, exp_id = store
    tr, _, te, feats = data
    y, p = te.label.to_numpy(), np.linspace(0.01, 0.9, len(te))
    test = metrics(y, p) | {"ece": 0.0123}
    folds = pd.DataFrame({"fold": [0, 1], "roc_auc": [0.7, 0.72], "eval_positives": [30.0, 41.0]})
    parent = tracking.start_parent(exp_id, "train-x", {"seed": 1}, {"flow": "train"})
    inputs = [tracking.DatasetInput(tr[[*feats, "label"]], "training", ("2026-01-01", "2026-04-01")),
              tracking.DatasetInput(te[[*feats, "label"]], "test", ("2026-05-01", "2026-05-29"))]
    rid = tracking.log_candidate(exp_id, parent, "xgboost", {"hp.max_depth": 3},
                                 {"test": test, "cv": {"roc_auc": 0.71}, "cv_std": {"roc_auc": 0.01}},
                                 {"test": (y, p)}, extra_metrics={"fit_seconds": 1.23456789}, folds=folds,
                                 description="xgboost: the main candidate", datasets=inputs)
    run = mlflow.get_run(rid)
    m = run.data.metrics
    assert set(m) == set(tracking.HEADLINE)  # a few clear rows in MLflow's compare view
    assert m["test_roc_auc"] == pytest.approx(test["roc_auc"], abs=1e-6)
    assert m["test_lift_at_10pct"] == pytest.approx(test["lift_10"], abs=1e-6)
    assert m["cv_roc_auc"] == 0.71 and m["cv_roc_auc_std"] == 0.01 and m["fit_seconds"] == 1.23
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="tables/metrics.csv", dst_path=str(tmp_path))
    table = pd.read_csv(local).set_index("metric")["value"]  # every other number, under MLflow's names
    assert table["test_rows"] == len(te) and table["test_churners"] == int(y.sum())  # counts under their names
    assert table["test_lift_at_20pct"] == pytest.approx(test["lift_20"], abs=1e-6) and "test_lift_20" not in table
    assert run.data.tags["mlflow.note.content"] == "xgboost: the main candidate"
    got = {i.dataset.name: i for i in run.inputs.dataset_inputs}
    assert set(got) == {"churn snapshots 2026-01-01..2026-04-01 (training)",
                        "churn snapshots 2026-05-01..2026-05-29 (test)"}
    tr_tags = {t.key: t.value for t in got["churn snapshots 2026-01-01..2026-04-01 (training)"].tags}
    assert tr_tags["mlflow.data.context"] == "training" and tr_tags["window"] == "2026-01-01..2026-04-01"
    assert tr_tags["rows"] == str(len(tr)) and tr_tags["churners"] == str(int(tr.label.sum()))
    local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="tables/cv_folds.csv", dst_path=str(tmp_path))
    assert pd.read_csv(local)["eval_churners"].tolist() == [30, 41]


def test_a_logged_dataset_has_the_schema_and_profile_mlflow_would_infer_and_a_content_digest() -> None:
    from mlflow.data.code_dataset_source import CodeDatasetSource

    df = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [1, 2, 3], "label": [0, 1, 0]})  # a gap, an int column
    source = CodeDatasetSource({"built_by": "test"})
    ours = tracking.mlflow_dataset(df, source, "label", "d").to_dict()
    theirs = mlflow.data.from_pandas(df.astype("float64"), source=source, targets="label", name="d").to_dict()
    assert {k: v for k, v in ours.items() if k != "digest"} == {k: v for k, v in theirs.items() if k != "digest"}
    assert json.loads(ours["schema"])["mlflow_colspec"][0] == {"type": "double", "name": "a", "required": False}
    again = tracking.mlflow_dataset(df.copy(), source, "label", "d").digest
    changed = tracking.mlflow_dataset(df.assign(b=[1, 2, 4]), source, "label", "d").digest
    assert ours["digest"] == again != changed  # same rows, same digest; any changed cell, another


def test_counts_and_money_are_rounded_and_the_parent_has_a_candidates_table(store, tmp_path) -> None:
    _, exp_id = store
    assert tracking.rounded("revenue_churners_prevented", 278.09999999999997) == 278.0
    assert tracking.rounded("revenue_contacted", 2949.5) == 2950.0
    assert tracking.rounded("revenue_saved", 21475.123) == 21475.12
    assert tracking.rounded("time_cv_seconds", 12.3456) == 12.35
    assert tracking.rounded("test_roc_auc", 0.812345678) == 0.812346
    parent = tracking.start_parent(exp_id, "train-y", {}, {})
    y = np.r_[np.zeros(50), np.ones(50)]
    table = pd.DataFrame({"name": ["xgboost", "logistic"], "role": ["candidate"] * 2, "kind": ["xgboost", "logistic"],
                          "test_roc_auc": [0.8123456, 0.79], "test_lift_10": [4.891234, 4.5], "fit_seconds": [2.46, 1.0]})
    curves = {"xgboost": (y, np.linspace(0, 1, 100)), "logistic": (y, np.linspace(0.2, 0.8, 100))}
    tracking.log_summary(parent, table, curves, {"revenue_churners_prevented": 278.09999999999997,
                                                 "revenue_saved": 21475.4999, "cv_folds": 3.0})
    run = mlflow.get_run(parent)
    assert run.data.metrics["revenue_churners_prevented"] == 278.0 and run.data.metrics["revenue_saved"] == 21475.5
    local = mlflow.artifacts.download_artifacts(run_id=parent, artifact_path="candidates.json", dst_path=str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged["columns"][:4] == ["name", "role", "kind", "test_roc_auc"]
    assert "test_lift_at_10pct" in logged["columns"]
    assert logged["data"][0][logged["columns"].index("test_roc_auc")] == 0.8123
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent, "plots")}
    assert {"plots/test_roc.png", "plots/test_pr.png", "plots/test_gains.png", "plots/test_calibration.png"} <= arts


def test_the_registered_version_says_what_the_gate_decided_with_both_scores_on_one_window(store, data) -> None:
    _, exp_id = store
    tr, va, te, feats = data
    name = "story"
    models = [fit_candidate(parse_spec({"kind": "logistic"}, "logistic"), tr, va, feats, seed=0),
              fit_candidate(parse_spec({"kind": "xgboost", "params": {"n_estimators": 5, "max_depth": 1}}, "tiny"),
                            tr, va, feats, seed=0)]
    versions = []
    for model in models:
        with mlflow.start_run(experiment_id=exp_id):
            info = registry.log_model(model, tr.head(5), tr.head(200), {"features": feats}, "fs-1")
        v = registry.register(info.model_uri, {registry.FEATURE_SET_TAG: "fs-1", "test_window": "2026-01..02",
                                               "test_roc_auc": "0.900000", "test_lift_10": "4.891800"}, name=name)
        m = metrics(te.label, model.predict_proba(te))
        d = registry.run_gate(v, m, te, te.label.to_numpy(), "fs-1", T0, "pytest", GatePolicy(), name=name,
                              challenger_scores=model.predict_proba(te), window=WINDOW)
        champ = (mlflow.MlflowClient().get_model_version(name, d.champion_version).tags
                 if d.champion_version else None)
        text = version_description(d, v, model.name, WINDOW, len(te), int(te.label.sum()), "2026-06-01 00:00 UTC",
                                   GatePolicy(), champ)
        registry.describe_version(v, text, name=name)
        versions.append((v, d))
    (v1, d1), (v2, d2) = versions
    mv1 = mlflow.MlflowClient().get_model_version(name, v1)
    assert mv1.description.startswith("**PROMOTED**") and "first model" in mv1.description
    mv2 = mlflow.MlflowClient().get_model_version(name, v2)
    desc = mv2.description
    assert desc.startswith(f"**{d2.decision.upper()}**") and mv2.tags["gate.window"] == WINDOW
    assert f"the test window **{WINDOW}**" in desc and f"| challenger v{v2} | champion v{v1} |" in desc
    for metric, label in (("roc_auc", "ROC-AUC"), ("lift_10", "lift@10%")):
        row = next(line for line in desc.splitlines() if line.startswith(f"| {label} |"))
        digits = 2 if metric == "lift_10" else 4
        assert row.startswith(f"| {label} | {d2.challenger[metric]:.{digits}f} | {d2.champion[metric]:.{digits}f} | ")
    # the champion's own registration-time numbers are named with their (other) window
    assert "own scores when it was registered were measured on its test window 2026-01..02" in desc
    assert "lift@10% 4.89" in desc
    line = gate_line_from_tags(v2, dict(mv2.tags))
    assert line == gate_line(v2, d2.decision, d2.reason, d2.challenger, d2.champion, v1, WINDOW)
    assert f"against champion v{v1}, both scored on the test window {WINDOW}" in line


def test_gate_line_names_the_window_and_marks_the_metric_that_failed() -> None:
    line = gate_line("4", "rejected", "lift_10 4.7 < champion 4.9", {"roc_auc": 0.82, "lift_10": 4.7},
                     {"roc_auc": 0.81, "lift_10": 4.9}, "3", WINDOW)
    assert line == (f"gate: churn v4 REJECTED against champion v3, both scored on the test window {WINDOW}: "
                    "ROC-AUC 0.8200 vs 0.8100 (ok), lift@10% 4.70 vs 4.90 (worse)")
    refused = gate_line("5", "rejected", "not comparable with champion v3: horizon 14 d differs", {"roc_auc": 0.8},
                        None, "3", WINDOW)
    assert "not comparable" in refused and f"ROC-AUC 0.8000 on the test window {WINDOW}" in refused
