"""The stream flow end to end (slow): a small simulation, a champion trained with the
project's own training code into a temporary MLflow store, `churn stream --until-caught-up`
under Prefect's test harness; plus the served deployments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from flows.stream import CATCH_UP_DEPLOYMENT, LIVE_DEPLOYMENT, deployments
from pipeline.config import PROJECT_ROOT
from pipeline.log import open_log
from pipeline.store import Store
from pipeline.stream.champion import RegistryChampion
from pipeline.stream.model import load_export
from pipeline.testing.stream import simulated_log


def test_deployments_live_and_catch_up_one_run_at_a_time(tmp_path) -> None:
    deps = {d.name: d for d in deployments(data_dir=str(tmp_path))}
    assert set(deps) == {LIVE_DEPLOYMENT, CATCH_UP_DEPLOYMENT}
    for d in deps.values():
        assert d.flow_name == "stream" and d.parameters["data_dir"] == str(tmp_path)
        assert d.concurrency_limit == 1 or getattr(d.concurrency_limit, "limit", None) == 1
    assert deps[CATCH_UP_DEPLOYMENT].parameters["until_caught_up"] is True
    assert "until_caught_up" not in deps[LIVE_DEPLOYMENT].parameters
    from flows.serve import deployments as served

    assert {f"{d.flow_name}/{d.name}" for d in served()} >= {
        "stream/live",
        "stream/catch-up",
        "train/weekly",
    }


def _train_champion(data_dir, uri: str) -> str:
    import mlflow

    from pipeline import registry
    from pipeline.training.data import build_dataset
    from pipeline.training.fit import fit_candidate
    from pipeline.training.specs import load_spec

    log = open_log(data_dir / "log", "events")
    ds = build_dataset(log, horizon_days=14, every_days=7)
    model = fit_candidate(
        load_spec(PROJECT_ROOT / "models" / "xgboost.yaml"),
        ds.part("train"),
        ds.part("val"),
        ds.features,
        seed=1,
    )
    experiment = registry.configure(uri)  # artifacts beside the temp db, not in ./mlruns
    train = ds.part("train")
    with mlflow.start_run(experiment_id=experiment):
        info = registry.log_model(
            model, train.head(5), train.head(300), ds.registry_doc, ds.feature_set_version
        )
    version = registry.register(info.model_uri, {registry.FEATURE_SET_TAG: ds.feature_set_version,
                                                 registry.HORIZON_TAG: "14",
                                                 "train.base_rate": f"{train['label'].mean():.6f}"})  # as flows.train
    registry.promote(version, "pytest", "pytest", datetime.now(UTC))
    return version


@pytest.mark.slow
def test_churn_stream_scores_the_log_with_the_registered_champion(
    tmp_path, prefect_harness
) -> None:
    from churn.cli.app import app
    from churn.cli.stream import register

    data_dir = tmp_path / "data"
    log = simulated_log(data_dir / "log", users=2_000, days=80, partitions=2, seed=3)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    version = _train_champion(data_dir, uri)
    champion = RegistryChampion(uri)
    info = champion.current()
    assert info is not None and info.version == version
    # the label horizon travels to the workers: a drift retrain waits for it (DriftConfig.after_days)
    assert info.horizon_days == 14
    exported = champion.export(info, tmp_path / "export")
    assert exported.horizon_days == 14 and load_export(exported).ref.horizon_days == 14
    assert load_export(exported).version == version

    if "stream" not in {c.name for c in app.registered_commands}:
        register(app)
    result = CliRunner().invoke(
        app,
        [
            "--data-dir",
            str(data_dir),
            "stream",
            "--until-caught-up",
            "--no-autoscale",
            "--max-seconds",
            "120",
            "--tracking-uri",
            uri,
            "--batch-size",
            "2000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "caught up" in result.output and f"champion v{version}" in result.output
    assert "events/s" in result.output and "final lag 0 records" in result.output  # closing report
    assert "top 10 at-risk active users" in result.output
    assert "x the champion's training base rate" in result.output  # the high-risk rule, resolved
    assert info.base_rate is not None and info.base_rate_source == "training base rate"
    ends = {p: log.end_offset(p) for p in range(2)}
    assert log.committed("churn-stream") == ends  # what `churn lag` reads
    with Store(f"sqlite:///{data_dir / 'churn.db'}") as store:
        df = store.current_scores(top_k=None, active_only=False)
        assert len(df) > 1_500 and (df["model_version"] == version).all()
        assert df["active"].any() and not df["active"].all()  # some users cancelled
        top = store.current_scores(top_k=10)
        assert top["active"].all() and all(u in result.output for u in top["user_id"])
        assert df["risk"].between(0, 1).all() and df["plan"].notna().any()
        m = store.metrics_since()
        assert not m.empty and (m["model_version"] == version).all()
        assert store.assignments().empty  # drained


@pytest.mark.slow
def test_churn_stream_without_a_topic_is_one_clear_line(tmp_path) -> None:
    from churn.cli.app import app
    from churn.cli.stream import register

    if "stream" not in {c.name for c in app.registered_commands}:
        register(app)
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "stream"])
    assert result.exit_code == 1 and "churn simulate" in result.output
