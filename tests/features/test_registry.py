"""The feature registry is complete, coherent and versioned."""

from __future__ import annotations

import doctest
import importlib
import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest

from pipeline.features import registry
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION, FEATURES, MAX_WINDOW


def test_every_feature_is_documented_and_windows_fit_the_ring():
    assert len(set(FEATURE_NAMES)) == len(FEATURES) >= 25
    for f in FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name) and len(f.description) > 15
        assert f.window_days is None or 1 <= f.window_days <= MAX_WINDOW
    rows = registry.describe()
    assert [r["name"] for r in rows] == list(FEATURE_NAMES)


def test_the_issue_s_features_are_all_there():
    wanted = {
        "sessions_7d", "sessions_14d", "sessions_30d", "watch_per_day_7d", "watch_per_day_30d",
        "watch_per_session_7d", "sessions_trend_7v7", "watch_slope_14d", "watch_lag_1d", "watch_lag_2d",
        "days_since_last_session", "active_days_30d", "payments_failed_30d", "last_payment_failed",
        "tickets_30d", "downgrades_30d", "tenure_days", "plan_price",
    }
    assert wanted <= set(FEATURE_NAMES)


def test_version_is_the_same_in_every_process():
    # a model trained in one process is checked against a stream in another: the version must
    # not depend on hash seeds, dict order or anything else of the process that computed it
    code = "from pipeline.features.registry import FEATURE_SET_VERSION as v; print(v)"
    seen = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                           capture_output=True, text=True, check=True).stdout.strip() for seed in ("0", "1", "987")}
    assert seen == {FEATURE_SET_VERSION}
    assert re.fullmatch(r"[0-9a-f]{16}", FEATURE_SET_VERSION)


def test_version_hash_changes_with_any_definition(monkeypatch):
    changed = (replace(FEATURES[0], window_days=8), *FEATURES[1:])
    monkeypatch.setattr(registry, "FEATURES", changed)
    assert registry._version() != FEATURE_SET_VERSION
    monkeypatch.setattr(registry, "FEATURES", FEATURES)
    monkeypatch.setattr(registry, "ENGINE_VERSION", registry.ENGINE_VERSION + 1)
    assert registry._version() != FEATURE_SET_VERSION


@pytest.mark.parametrize("module", ["pipeline.features.timebase", "pipeline.features.registry",
                                    "pipeline.features.state", "pipeline.labels", "pipeline.split"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
