"""Config validation, alert levels, retrain cooldown, the drift event and the train trigger."""

from __future__ import annotations

import doctest
import importlib
import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest

from pipeline.autoscale.alerts import Alert, Level
from pipeline.clock import FakeClock
from pipeline.drift.alerts import assess_drift, grade
from pipeline.drift.check import FeatureDrift, Skipped
from pipeline.drift.config import DriftConfig
from pipeline.drift.loop import (
    DRIFT_EVENT,
    RetrainCooldown,
    emit_drift_event,
    prefect_emitter,
    train_trigger,
)
from pipeline.errors import ConfigError
from tests.drift.helpers import T0

W = "Wasserstein distance (normed)"


@pytest.mark.parametrize("name", ["pipeline.drift.config", "pipeline.drift.window", "pipeline.drift.cadence",
                                  "pipeline.drift.alerts", "pipeline.drift.loop", "pipeline.drift.reports"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_config_rejects_bad_values_with_the_remedy():
    with pytest.raises(ConfigError, match=r"min_rows=600 > window_rows=500"):
        DriftConfig(window_rows=500, min_rows=600)
    with pytest.raises(ConfigError, match=r"executor='fork'"):
        DriftConfig(executor="fork")
    settings = SimpleNamespace(drift_window_rows=2_000, drift_every_rows=None)
    assert DriftConfig.from_settings(settings, min_rows=100).window_rows == 2_000
    with pytest.raises(ConfigError, match="unknown drift setting"):
        DriftConfig.from_settings(settings, colour="red")


@pytest.mark.parametrize(("share", "score", "level"), [
    (0.0, 0.0, Level.HEALTHY), (0.19, 0.09, Level.HEALTHY), (0.2, 0.0, Level.WARNING),
    (0.0, 0.1, Level.WARNING), (0.4, 0.0, Level.CRITICAL), (0.1, 0.25, Level.CRITICAL),
])
def test_levels_follow_the_thresholds(share, score, level):
    alert = grade(share, FeatureDrift("risk", W, score, 0.1, score >= 0.1))
    assert isinstance(alert, Alert) and alert.level is level and alert.reasons


def test_worst_reason_first_and_pvalue_prediction_is_a_warning():
    alert = grade(0.25, FeatureDrift("risk", W, 0.3, 0.1, True), ["a"])
    assert alert.level is Level.CRITICAL and alert.reasons[0].startswith("risk drift 0.300")
    small = grade(0.0, FeatureDrift("risk", "K-S p_value", 0.001, 0.05, True))
    assert small.level is Level.WARNING and "p_value" in small.reasons[0]
    skipped = assess_drift(Skipped(T0, "1", 10, "window has 10 rows"))
    assert skipped.level is Level.HEALTHY and "skipped" in skipped.reasons[0]


def test_cooldown_is_respected_and_shared_through_its_file(tmp_path):
    clock = FakeClock(T0)
    a = RetrainCooldown(tmp_path / "cd.json", hours=6, clock=clock)
    b = RetrainCooldown(tmp_path / "cd.json", hours=6, clock=clock)  # another worker / a restart
    assert a.try_acquire("3")
    assert not b.try_acquire("3") and b.remaining() == timedelta(hours=6)
    clock.advance(6 * 3600 - 1)
    assert not a.try_acquire("4")
    clock.advance(1)
    assert b.try_acquire("4") and not a.try_acquire("4")
    (tmp_path / "cd.json").write_text("{not json")
    assert a.try_acquire("4")  # an unreadable file does not block retraining forever
    assert RetrainCooldown(tmp_path / "zero.json", hours=0, clock=clock).try_acquire("1")


def test_emit_without_prefect_api_is_a_logged_noop(monkeypatch, caplog):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with caplog.at_level(logging.INFO, logger="pipeline.drift.loop"):
        assert emit_drift_event("7", {"level": "Critical"}) is None
    assert "no PREFECT_API_URL: not emitting churn.drift.detected for churn.model.7" in caplog.text


def test_emit_passes_event_resource_payload_and_survives_failures(caplog):
    sent = []
    emit_drift_event("7", {"drifted_share": 0.5}, lambda e, r, p: sent.append((e, r, p)))
    assert sent == [(DRIFT_EVENT, {"prefect.resource.id": "churn.model.7", "prefect.resource.name": "churn v7",
                                   "churn.model.version": "7"}, {"drifted_share": 0.5})]

    def broken(*_):
        raise ConnectionError("api down")

    assert emit_drift_event("7", {}, broken) is None
    assert "could not emit churn.drift.detected for model 7: ConnectionError: api down" in caplog.text


def test_train_trigger_matches_the_drift_event_and_fits_the_train_deployment():
    from uuid import uuid4

    from prefect.events.schemas.events import Resource

    from flows.train import train

    trig = train_trigger()
    deployment = train.to_deployment(name="weekly", concurrency_limit=1, triggers=[trig])  # what serve.py adds
    assert deployment.triggers[0].expect == {DRIFT_EVENT}
    trig.set_deployment_id(uuid4())
    automation = trig.as_automation()
    assert automation.name == "retrain-on-drift" and automation.trigger.posture == "Reactive"
    trigger = automation.trigger
    assert trigger.expect == {DRIFT_EVENT}  # the event name filter
    assert trigger.match.matches(Resource({"prefect.resource.id": "churn.model.7"}))
    assert not trigger.match.matches(Resource({"prefect.resource.id": "prefect.flow-run.1"}))
    assert prefect_emitter.__module__ == "pipeline.drift.loop"
