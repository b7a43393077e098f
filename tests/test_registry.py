"""MLflow registry: native model logging round trip, the champion gate, alias history.

A temporary SQLite tracking store per module; nothing touches the network.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pytest

from pipeline import registry
from pipeline.evaluation import metrics
from pipeline.testing.training import split_by_cutoff, synthetic_snapshots
from pipeline.training.fit import fit_candidate
from pipeline.training.gate import GatePolicy, decide
from pipeline.training.specs import parse_spec

T0 = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch_module.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = tmp_path_factory.mktemp("mlruns")
    exp = registry.configure(f"sqlite:///{root}/mlflow.db")
    yield exp
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def data():
    df, feats = synthetic_snapshots(users=1_200, cutoffs=4, seed=7)
    df = split_by_cutoff(df)
    return df[df.split == "train"], df[df.split == "val"], df[df.split == "test"], feats


def _fit(data, raw: dict, name: str):
    tr, va, _, feats = data
    return fit_candidate(parse_spec(raw, name), tr, va, feats, seed=0)


def _log_and_register(store, data, model, name: str, fs: str = "fs-1") -> str:
    tr = data[0]
    with mlflow.start_run(experiment_id=store):
        info = registry.log_model(model, tr.head(5), tr.head(200), {"features": list(model.features)}, fs)
    return registry.register(info.model_uri, {registry.FEATURE_SET_TAG: fs, "candidate": model.name}, name=name)


def _gate(data, model, version: str, name: str, now: datetime, fs: str = "fs-1"):
    test = data[2]
    m = metrics(test.label, model.predict_proba(test))
    return registry.run_gate(version, m, test, test.label.to_numpy(), fs, now, "pytest", GatePolicy(), name=name)


@pytest.mark.parametrize("raw", [
    {"kind": "xgboost", "params": {"n_estimators": 40, "max_depth": 3}},
    {"kind": "logistic"},
])
def test_champion_loads_back_with_the_same_predictions(store, data, raw, tmp_path) -> None:
    name = f"rt_{raw['kind']}"
    model = _fit(data, raw, raw["kind"])
    test = data[2]
    before = model.predict_proba(test)
    v = _log_and_register(store, data, model, name)
    assert _gate(data, model, v, name, T0).promoted  # a first model becomes champion
    loaded = registry.load_model(f"models:/{name}@champion")
    assert np.allclose(loaded.predict_proba(test), before, atol=1e-6)
    bundle = registry.load_bundle(f"models:/{name}@champion")
    assert bundle.feature_set_version == "fs-1" and len(bundle.reference) == 200
    assert list(bundle.reference.columns) == list(model.features)
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{v}", dst_path=str(tmp_path))
    files = {p.name for p in Path(local).rglob("*") if p.is_file()}
    assert ("model.ubj" if raw["kind"] == "xgboost" else "model.skops") in files  # native, not pickle
    assert not any(f.endswith((".pkl", ".pickle")) for f in files)
    assert {"feature_registry.json", "reference.parquet", "MLmodel", "input_example.json"} <= files


def _stored(name: str, version: str) -> Path:
    """The registered version's artifact directory in the file-backed store."""
    uri = mlflow.MlflowClient().get_model_version_download_uri(name, version)
    return Path(uri.removeprefix("file://"))


@pytest.mark.parametrize("raw", [
    {"kind": "xgboost", "params": {"n_estimators": 20, "max_depth": 3}},
    {"kind": "logistic"},
])
def test_a_damaged_artifact_is_one_clear_error_naming_the_version(store, data, raw) -> None:
    """A truncated model file ended `churn stream` in three BadZipFile tracebacks (XGBoost: its
    parser's error) that named neither the version nor what to do."""
    from pipeline.errors import ModelUnreadableError

    name = f"damaged_{raw['kind']}"
    v = _log_and_register(store, data, _fit(data, raw, raw["kind"]), name)
    model_file = _stored(name, v) / ("model.ubj" if raw["kind"] == "xgboost" else "model.skops")
    model_file.write_bytes(model_file.read_bytes()[:300])  # a torn copy
    for load in (registry.load_model, registry.load_bundle):
        with pytest.raises(ModelUnreadableError) as err:
            load(f"models:/{name}/{v}")
        msg = str(err.value)
        assert msg.startswith(f"models:/{name}/{v}: its model files cannot be read (")
        assert "register a working version (`churn train`)" in msg and "\n" not in msg


def test_a_missing_reference_sample_is_one_clear_error(store, data) -> None:
    from pipeline.errors import ModelUnreadableError

    v = _log_and_register(store, data, _fit(data, {"kind": "logistic"}, "m"), "noref")
    (_stored("noref", v) / "extra_files" / "reference.parquet").unlink()
    assert registry.load_model(f"models:/noref/{v}") is not None  # the model itself is fine
    with pytest.raises(ModelUnreadableError, match=r"feature registry or reference sample \(extra_files\)"):
        registry.load_bundle(f"models:/noref/{v}")


def test_xgboost_pyfunc_returns_probabilities(store, data) -> None:
    model = _fit(data, {"kind": "xgboost", "params": {"n_estimators": 20}}, "x")
    v = _log_and_register(store, data, model, "pyfunc_check")
    test = data[2].head(20)
    out = mlflow.pyfunc.load_model(f"models:/pyfunc_check/{v}").predict(test[list(model.features)].astype(float))
    assert np.allclose(np.asarray(out).ravel(), model.predict_proba(test), atol=1e-6)


def test_gate_keeps_a_better_champion_and_promotes_a_better_challenger(store, data) -> None:
    name = "gate_demo"
    rule = _fit(data, {"kind": "rule", "features": ["days_since_last_session"]}, "rule")
    weak = _fit(data, {"kind": "logistic", "features": ["plan_price"]}, "weak")
    strong = _fit(data, {"kind": "logistic"}, "strong")

    v1 = _log_and_register(store, data, rule, name)
    d1 = _gate(data, rule, v1, name, T0)
    assert d1.promoted and d1.reason.startswith("first model")

    v2 = _log_and_register(store, data, weak, name)
    d2 = _gate(data, weak, v2, name, T0 + timedelta(days=7))
    assert not d2.promoted and "< champion" in d2.reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, "champion").version) == v1
    assert str(client.get_model_version_by_alias(name, "challenger").version) == v2
    tags = client.get_model_version(name, v2).tags
    assert tags["gate.decision"] == "rejected" and tags["gate.champion_version"] == v1
    assert float(tags["gate.champion.roc_auc"]) > float(tags["gate.challenger.roc_auc"])

    v3 = _log_and_register(store, data, strong, name)
    d3 = _gate(data, strong, v3, name, T0 + timedelta(days=14))
    assert d3.promoted and d3.champion_version == v1
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3

    hist = registry.alias_history(name)
    assert hist["version"].tolist() == [v1, v3]
    assert hist["previous"].tolist() == [None, v1]
    assert hist["until"].iloc[0] == hist["since"].iloc[1] and hist["until"].iloc[1] is None
    assert "pytest" in hist["by"].iloc[1] and "roc_auc" in hist["reason"].iloc[1]


def _register(store, data, model, name: str, fs: str = "fs-1", **tags) -> str:
    tr = data[0]
    with mlflow.start_run(experiment_id=store):
        info = registry.log_model(model, tr.head(5), tr.head(200), {"features": list(model.features)}, fs)
    return registry.register(info.model_uri, {registry.FEATURE_SET_TAG: fs, "candidate": model.name, **tags},
                             name=name)


def _gate_scores(data, model, version, name, now, fs="fs-1", **kw):
    test = data[2]
    p = model.predict_proba(test)
    return registry.run_gate(version, metrics(test.label, p), test, test.label.to_numpy(), fs, now, "pytest",
                             GatePolicy(), name=name, challenger_scores=p, **kw)


def test_champion_of_another_feature_spec_is_refused_unless_forced(store, data) -> None:
    name = "fs_change"
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _log_and_register(store, data, m, name, fs="old")
    assert _gate(data, m, v1, name, T0, fs="old").promoted
    strong = _fit(data, {"kind": "logistic"}, "strong")
    v2 = _log_and_register(store, data, strong, name, fs="new")
    d = _gate(data, strong, v2, name, T0 + timedelta(days=1), fs="new")
    assert not d.promoted and "feature spec new differs from the champion's old" in d.reason and "force" in d.reason
    assert str(registry.champion_version(name).version) == v1
    forced = _gate_scores(data, strong, v2, name, T0 + timedelta(days=2), fs="new", force=True)
    assert forced.promoted and forced.forced and forced.reason.startswith("forced over champion v1")
    assert str(registry.champion_version(name).version) == v2
    assert mlflow.MlflowClient().get_model_version(name, v2).tags["gate.forced"] == "true"


def test_a_challenger_of_another_horizon_is_refused(store, data) -> None:
    name = "horizon_change"
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _register(store, data, m, name, horizon_days=30, topic="events")
    assert _gate_scores(data, m, v1, name, T0).promoted
    v2 = _register(store, data, m, name, horizon_days=14, topic="events")  # same model, other question
    d = _gate_scores(data, m, v2, name, T0 + timedelta(days=1))
    assert not d.promoted and "horizon 14 d differs from the champion's 30 d" in d.reason
    tags = mlflow.MlflowClient().get_model_version(name, v2).tags
    assert tags["gate.decision"] == "rejected" and "horizon" in tags["gate.reason"]
    assert str(registry.champion_version(name).version) == v1


def test_a_challenger_of_another_topic_is_refused(store, data) -> None:
    name = "topic_change"
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _register(store, data, m, name, horizon_days=30, topic="events")
    assert _gate_scores(data, m, v1, name, T0).promoted
    v2 = _register(store, data, m, name, horizon_days=30, topic="shop")
    d = _gate_scores(data, m, v2, name, T0 + timedelta(days=1))
    assert not d.promoted and "topic 'shop' differs" in d.reason


def test_an_error_scoring_the_champion_rejects_the_challenger(store, data, monkeypatch) -> None:
    name = "fail_closed"
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _register(store, data, m, name, horizon_days=30)
    assert _gate_scores(data, m, v1, name, T0).promoted
    strong = _fit(data, {"kind": "logistic"}, "strong")
    v2 = _register(store, data, strong, name, horizon_days=30)

    def broken(uri: str):
        raise OSError(f"artifact store unreachable for {uri}")

    monkeypatch.setattr(registry, "load_model", broken)
    d = _gate_scores(data, strong, v2, name, T0 + timedelta(days=1))
    assert not d.promoted and "OSError: artifact store unreachable" in d.reason and "fail closed" in d.reason
    assert str(registry.champion_version(name).version) == v1  # the old behaviour promoted here
    assert mlflow.MlflowClient().get_model_version(name, v2).tags["gate.decision"] == "rejected"


def test_a_registry_that_does_not_answer_is_an_error_not_no_champion(store, data, monkeypatch) -> None:
    """`champion_version` read any MLflow error as "no champion": the gate would then promote
    a challenger as "first model: no champion yet" on a registry hiccup, and a stream said
    "train one with `churn train`" about a server that was down."""
    from mlflow.exceptions import MlflowException

    from pipeline.errors import RegistryError

    name = "hiccup"
    assert registry.champion_version(name) is None  # no such model: no champion, as before
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _register(store, data, m, name, horizon_days=30)

    def down(self, model, alias):
        raise MlflowException("API request to http://mlflow:5000/... failed: Max retries exceeded",
                              error_code="INTERNAL_ERROR")  # fmt: skip

    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_by_alias", down)
    with pytest.raises(RegistryError, match="did not answer the champion lookup \\(INTERNAL_ERROR"):
        registry.champion_version(name)
    with pytest.raises(RegistryError):
        _gate_scores(data, m, v1, name, T0)  # fail closed: not promoted as a first model
    monkeypatch.undo()
    assert registry.champion_version(name) is None  # nothing was promoted


def test_the_gate_records_paired_bootstrap_differences(store, data) -> None:
    name = "paired"
    weak = _fit(data, {"kind": "rule", "features": ["days_since_last_session"]}, "rule")
    strong = _fit(data, {"kind": "logistic"}, "strong")
    v1 = _register(store, data, weak, name, horizon_days=30)
    assert _gate_scores(data, weak, v1, name, T0).promoted
    v2 = _register(store, data, strong, name, horizon_days=30)
    d = _gate_scores(data, strong, v2, name, T0 + timedelta(days=1))
    assert d.promoted and set(d.differences) == {"roc_auc", "lift_10"}
    auc = d.differences["roc_auc"]
    assert auc["ci_low"] <= auc["diff"] <= auc["ci_high"] and auc["diff"] > 0
    assert "95% CI" in d.reason
    tag = mlflow.MlflowClient().get_model_version(name, v2).tags["gate.diff.roc_auc"]
    assert tag.startswith("+") and "[" in tag


def test_a_calibrated_model_loads_back_calibrated(store, data) -> None:
    from pipeline.training.calibrate import fit as fit_calibration
    from pipeline.training.models import CalibratedModel

    base = _fit(data, {"kind": "xgboost", "params": {"n_estimators": 30, "max_depth": 3}}, "x")
    va = data[1]
    model = CalibratedModel(base, fit_calibration("isotonic", base.predict_proba(va), va.label.to_numpy()))
    v = _register(store, data, model, "calibrated")
    loaded = registry.load_model(f"models:/calibrated/{v}")
    test = data[2]
    assert np.allclose(loaded.predict_proba(test), model.predict_proba(test), atol=1e-6)
    assert not np.allclose(loaded.predict_proba(test), base.predict_proba(test), atol=1e-3)
    assert np.allclose(loaded.contributions(test).to_numpy(), base.contributions(test).to_numpy(), atol=1e-5)


def test_history_flags_an_alias_moved_by_hand(store, data) -> None:
    name = "by_hand"
    m = _fit(data, {"kind": "logistic"}, "m")
    v1 = _log_and_register(store, data, m, name)
    _gate(data, m, v1, name, T0)
    v2 = _log_and_register(store, data, m, name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", v2)
    hist = registry.alias_history(name)
    assert hist["reason"].iloc[-1] == "alias set outside the gate" and hist["version"].iloc[-1] == v2
    registry.promote(v1, "rollback: v2 was set by hand", "alice", T0 + timedelta(days=2), name=name)
    assert registry.alias_history(name)["reason"].iloc[-1].startswith("rollback")


def test_gate_decision_is_pure_and_configurable() -> None:
    chal, champ = {"roc_auc": 0.80, "lift_10": 2.95}, {"roc_auc": 0.79, "lift_10": 3.0}
    assert not decide(chal, champ).promoted
    assert decide(chal, champ, GatePolicy(("roc_auc",))).promoted
    assert decide(chal, champ, GatePolicy(tolerance=0.1)).promoted
    assert decide(chal, champ | {"roc_auc": 0.80, "lift_10": 2.95}).promoted  # ties pass
    with pytest.raises(ValueError, match="lack gate metric"):
        decide({"roc_auc": 0.8}, champ)
