"""The stream and the topic's feature spec: a champion trained on another spec is refused
in one line; one trained on the topic's spec scores the engine's action columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.errors import ModelMismatchError
from pipeline.features.registry import FEATURE_SET_VERSION
from pipeline.features.spec import Action, FeatureSpec
from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamConfig
from pipeline.stream.model import export_model, load_export
from pipeline.stream.supervisor import Supervisor
from pipeline.testing.stream import tiny_model

SPEC = FeatureSpec.from_vocabulary(["export", Action("seat_removed", 1)],
                                   builtin=("sessions_7d", "sessions_30d", "tenure_days"))


def _write_profile(data_dir, spec: FeatureSpec) -> None:
    d = data_dir / "import" / "events"
    d.mkdir(parents=True, exist_ok=True)
    (d / "profile.json").write_text(json.dumps({"mapping": "test", "feature_spec": spec.document()}))


def _spec_model(spec: FeatureSpec, seed: int = 0):
    import xgboost as xgb

    from pipeline.training.models import XGBoostModel

    rng = np.random.default_rng(seed)
    X = rng.gamma(1.5, 3.0, (2000, len(spec.names))).astype(np.float32)
    y = (X[:, spec.names.index("act_seat_removed_30d")] > 4).astype(np.float32)
    dm = xgb.DMatrix(X, label=y, feature_names=list(spec.names))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": seed}, dm, 10)
    return XGBoostModel("xgboost", booster, tuple(spec.names), 9)


def test_stream_refuses_a_champion_of_another_spec_in_one_line(data_dir, tmp_path) -> None:
    _write_profile(data_dir, SPEC)
    champion = StaticChampion()
    champion.set(tiny_model(), "3")  # trained on the simulator's 29 features
    sup = Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn.db'}", champion,
                     StreamConfig(group="test", model_poll_s=0.05))
    assert sup.feature_spec == SPEC
    with pytest.raises(ModelMismatchError) as exc:
        sup.run(max_seconds=5)
    msg = str(exc.value)
    assert "\n" not in msg and "v3" in msg and FEATURE_SET_VERSION in msg and SPEC.version in msg
    assert "2 declared actions" in msg and "churn train" in msg


def test_export_of_the_topic_spec_scores_engine_columns_and_other_specs_refuse(tmp_path) -> None:
    model = _spec_model(SPEC)
    ref = export_model(model, "7", SPEC.version, tmp_path / "models")
    with pytest.raises(ModelMismatchError, match=f"trained on feature set {SPEC.version}.*{FEATURE_SET_VERSION}"):
        load_export(ref)  # a stream of the simulator's topic
    scoring = load_export(ref, spec=SPEC)
    rng = np.random.default_rng(1)
    engine = rng.gamma(1.5, 3.0, (50, len(SPEC.engine_columns)))  # what FeatureFrame.values holds
    by_name = engine[:, [SPEC.engine_columns.index(f) for f in SPEC.names]]
    want = model.booster.inplace_predict(by_name.astype(np.float32))
    assert np.allclose(scoring.predict(engine), want)
    other = FeatureSpec.from_vocabulary(["export"], builtin=SPEC.builtin)
    with pytest.raises(ModelMismatchError, match=other.version):
        load_export(ref, spec=other)


class _Failing(StaticChampion):
    """A registry whose version 2 cannot be exported: ``error`` is what loading it raises
    (None: it loads)."""

    def __init__(self, error: Exception | None) -> None:
        super().__init__()
        self.error = error

    def export(self, info, models_dir, spec=None):
        if info.version == "2" and self.error is not None:
            raise self.error
        return super().export(info, models_dir) if spec is None else super().export(info, models_dir, spec)


def _scoring_v1_when_v2_comes(champion: _Failing, data_dir, db) -> Supervisor:
    """A supervisor that adopted v1, after two registry polls that saw v2 as champion (a
    refused version is not tried again; a failed load is)."""
    from pipeline.stream.model import read_pointer

    champion.set(tiny_model(), "1")
    sup = Supervisor(data_dir, "events", f"sqlite:///{db}", champion, StreamConfig(group=db.stem, model_poll_s=0.05))
    assert sup.wait_for_champion(lambda: False)
    champion.set(tiny_model(), "2")
    sup.follow_champion()
    sup.follow_champion()
    assert read_pointer(sup.paths.champion).version == "1"
    return sup


def test_a_damaged_champion_is_refused_at_start_and_later_the_old_one_keeps_scoring(data_dir, tmp_path,
                                                                                   caplog) -> None:  # fmt: skip
    """A damaged version moved to champion under a running stream crashed the supervisor
    (the parser's exception left follow_champion); now it is refused like a spec mismatch."""
    from pipeline.errors import ModelUnreadableError

    champion = _Failing(ModelUnreadableError("models:/churn/2: its model files cannot be read (BadZipFile: ...)"))
    champion.set(tiny_model(), "2")
    sup = Supervisor(data_dir, "events", f"sqlite:///{tmp_path / 'churn.db'}", champion,
                     StreamConfig(group="test", model_poll_s=0.05))  # fmt: skip
    with pytest.raises(ModelUnreadableError, match="models:/churn/2"):
        sup.run(max_seconds=5)  # nothing to score with: fail closed, in one line
    _scoring_v1_when_v2_comes(champion, data_dir, tmp_path / "churn2.db")
    assert caplog.text.count("models:/churn/2: its model files cannot be read") == 1
    assert "keep scoring with v1" in caplog.text


def test_a_registry_failing_under_a_running_stream_is_retried_not_fatal(data_dir, tmp_path, caplog) -> None:
    """An artifact store that cannot serve the new champion's files right now ended the whole
    supervised stream (the error left follow_champion); now the workers keep v1 and the next
    poll tries again, and adopts v2 once it loads."""
    from pipeline.errors import RegistryError
    from pipeline.stream.model import read_pointer

    champion = _Failing(RegistryError("cannot load models:/churn/2: No such artifact: 'MLmodel'"))
    sup = _scoring_v1_when_v2_comes(champion, data_dir, tmp_path / "churn.db")
    assert caplog.text.count("cannot load churn v2 now (RegistryError") == 2 and "keep scoring with v1" in caplog.text
    champion.error = None  # the store serves it again
    sup.follow_champion()
    assert read_pointer(sup.paths.champion).version == "2"


def test_a_registry_server_that_is_down_is_named_and_does_not_block_the_poll(monkeypatch) -> None:
    """One poll of an MLflow server that was down blocked the supervisor for ~4 minutes
    (MLflow's 7 retries) and then said "no version has the alias 'champion'; train one"."""
    import os
    import socket

    import mlflow

    from pipeline.stream.champion import STREAM_HTTP, RegistryChampion

    for var in STREAM_HTTP:  # unset here (restored after the test)
        monkeypatch.setenv(var, "0")
        monkeypatch.delenv(var)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own setting wins
    with socket.socket() as s:  # a port nothing listens on: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        source = RegistryChampion(f"http://127.0.0.1:{port}")
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
        assert source.current() is None
        assert "did not answer the champion lookup" in source.missing and "asking again at the next poll" in source.missing
        assert "train one" not in source.missing
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(("tags", "days"), [({"horizon_days": "14"}, 14), ({}, None), ({"horizon_days": "x"}, None),
                                            ({"horizon_days": "0"}, None)])  # fmt: skip
def test_the_champions_horizon_is_read_from_its_tag_or_unknown(tags, days) -> None:
    from pipeline.stream.champion import horizon_from_tags

    assert horizon_from_tags(tags) == days
