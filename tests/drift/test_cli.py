"""`churn drift`: the latest check as a table or JSON, `--report` the newest HTML path,
and one clear line when there is nothing yet. (A stand-in app: the lead wires
``register`` into ``churn.cli.app.app``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from churn.cli.drift import register
from pipeline.clock import FakeClock
from pipeline.config import load_settings
from pipeline.store import Store
from tests.drift.test_store_drift import result


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
