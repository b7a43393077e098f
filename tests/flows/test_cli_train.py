"""`churn train` prints the candidate table and the gate decision."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _app():
    from churn.cli.app import app
    from churn.cli.train import register

    if "train" not in {c.name for c in app.registered_commands}:
        register(app)
    return app


def test_churn_train_prints_table_and_gate(prefect_harness, small_history, tracking_uri) -> None:
    result = CliRunner().invoke(_app(), [
        "--data-dir", str(small_history), "train", "--horizon", "14", "--candidate", "rule",
        "--candidate", "logistic", "--no-leaky", "--no-register", "--shap-sample", "100",
        "--tracking-uri", tracking_uri, "--folds", "2", "--test-frac", "0.25", "--gap", "14", "--warmup", "28",
    ])
    assert result.exit_code == 0, result.output
    out = result.output
    print(out)
    assert "CV AUC" in out and "over 2 fold(s)" in out and "ECE" in out
    assert "logistic" in out and "rule" in out and "oracle" in out and "lift@10%" in out
    assert "not registered" in out and "revenue" in out


def test_churn_train_without_a_log_is_one_clear_line(tmp_path) -> None:
    result = CliRunner().invoke(_app(), ["--data-dir", str(tmp_path), "train"])
    assert result.exit_code == 1
    assert "no event log" in result.output and "churn simulate" in result.output


def test_a_run_refused_for_too_short_a_history_leaves_no_work_dir(prefect_harness, tmp_path, monkeypatch) -> None:
    """The flow made its scratch dir before building the snapshots and removed it only
    around training, so each refused run left an empty /tmp/churn-train-* behind."""
    data = ["--data-dir", str(tmp_path / "d")]
    assert CliRunner().invoke(_app(), [*data, "simulate", "--users", "60", "--days", "10"]).exit_code == 0
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    result = CliRunner().invoke(_app(), [*data, "train", "--no-register"])
    assert result.exit_code == 1 and "cannot fit" in result.output, result.output
    assert not list(scratch.glob("churn-train-*"))
