"""Every `churn` command starts with the quiet, offline defaults of flows.env (before, only
`churn train`/`stream` set them, so e.g. `churn demo` let MLflow write its telemetry file
under ~/.config and send telemetry)."""

import os

import pytest

from churn.cli.app import main
from flows.env import DEFAULTS


def test_any_command_sets_the_offline_defaults_first(monkeypatch) -> None:
    for k in DEFAULTS:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")  # a user's own value is kept
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert {k: os.environ.get(k) for k in DEFAULTS if k != "MLFLOW_DISABLE_TELEMETRY"} == {
        k: v for k, v in DEFAULTS.items() if k != "MLFLOW_DISABLE_TELEMETRY"}
