"""`churn drift`: the latest check as a table or JSON, `--report` the newest HTML path,
and one clear line when there is nothing yet. (A stand-in app: the lead wires
``register`` into ``churn.cli.app.app``.)"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from churn.cli.drift import register
from pipeline.clock import FakeClock
from pipeline.config import load_settings
from pipeline.store import Store
from tests.drift.test_store_drift import T0, result


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context, data_dir: Annotated[Path, typer.Option()]) -> None:
        ctx.obj = load_settings(data_dir=data_dir)

    register(app)
    return app


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


def invoke(data_dir: Path, *args: str):
    return CliRunner().invoke(make_app(), ["--data-dir", str(data_dir), "drift", *args])


def test_nothing_yet_is_one_clear_line(data_dir):
    res = invoke(data_dir)
    assert res.exit_code == 1 and "no store at" in res.output and "Traceback" not in res.output
    res = invoke(data_dir, "--report")
    assert res.exit_code == 1 and "no drift report under" in res.output


def test_latest_run_as_table_json_and_report_path(data_dir):
    data_dir.mkdir()
    with Store(f"sqlite:///{data_dir.resolve() / 'churn.db'}", clock=FakeClock()) as st:
        st.record_drift_run(result(0, 0.0), level="Healthy", reasons=["0% of features drifted"])
        st.record_drift_run(result(10, 0.5, pred=0.3), level="Critical", reasons=["50% of features drifted"])
    res = invoke(data_dir, "--runs", "5")
    assert res.exit_code == 0, res.output
    assert "Critical - model v3" in res.output and "50% of features drifted" in res.output
    assert "sessions_7d" in res.output and "last 2 checks" in res.output
    res = invoke(data_dir, "--json")
    d = json.loads(res.output)
    assert d["level"] == "Critical" and d["prediction_score"] == 0.3 and len(d["features"]) == 2
    (data_dir / "drift").mkdir()
    (data_dir / "drift" / "drift-20260301T000000Z-v3.html").write_text("old")
    (data_dir / "drift" / "drift-20260302T000000Z-v3.html").write_text("new")
    res = invoke(data_dir, "--report")
    assert res.exit_code == 0 and res.output.strip().endswith("drift-20260302T000000Z-v3.html")


def test_checks_that_came_due_without_a_verdict_are_named_with_their_reason(data_dir):
    """A 600-user source replayed with --until-caught-up: its one check was skipped (too few
    rows). `churn drift` said "no drift checks yet: the first comes once ..." as if nothing
    had come due; it now gives the skipped check's reason (its remedy)."""
    data_dir.mkdir()
    clock = FakeClock()
    with Store(f"sqlite:///{data_dir.resolve() / 'churn.db'}", clock=clock) as st:
        st.record_drift_status(time=clock.now(), model_version="1", status="skipped", rows=104, source="w0",
                               reason="window has 104 rows, fewer than min_rows=500: lower CHURN_DRIFT_MIN_ROWS")
    res = invoke(data_dir)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("no drift check in sqlite:")
    assert "has given a verdict yet: 1 check came due and was skipped" in res.output
    assert "(model v1, w0): window has 104 rows" in res.output and "CHURN_DRIFT_MIN_ROWS" in res.output
    assert json.loads(invoke(data_dir, "--json").output) is None  # --json is the latest check's verdict: none
    with Store(f"sqlite:///{data_dir.resolve() / 'churn.db'}", clock=clock) as st:
        st.record_drift_run(result(0, 0.0), level="Healthy", reasons=["0% of features drifted"])  # at T0
        for k in range(2):
            st.record_drift_status(time=T0 + timedelta(hours=k + 1), model_version="3", source="w0",
                                   status="failed" if k else "skipped", reason=f"reason {k}")  # fmt: skip
    res = invoke(data_dir)
    assert "Healthy - model v3" in res.output
    assert "since this check: 2 checks came due and were failed or skipped; the latest" in res.output
    assert res.output.rstrip().endswith("(model v3, w0): reason 1")
