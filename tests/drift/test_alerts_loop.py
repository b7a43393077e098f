"""Config validation, alert levels and the retrain cooldown (the Prefect half: tests/flows/test_retrain.py)."""

from __future__ import annotations

import doctest
import importlib
from datetime import timedelta
from types import SimpleNamespace

import pytest

from pipeline.autoscale.alerts import Alert, Level
from pipeline.clock import FakeClock
from pipeline.drift.alerts import assess_drift, grade
from pipeline.drift.check import FeatureDrift, Skipped
from pipeline.drift.config import DriftConfig
from pipeline.drift.loop import RetrainCooldown
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
