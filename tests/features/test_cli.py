"""`churn features` and `churn snapshots` on a small simulated file log."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from churn.cli.features import register
from pipeline.config import Settings
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    s = Settings(data_dir=tmp_path_factory.mktemp("data"))
    s.sim_dir.mkdir(parents=True)
    log = open_log(s.log_dir, s.topic, num_partitions=2)
    simulate_history(Simulator(SimConfig(users=500, days=150, seed=5)), log, s.sim_dir)
    log.close()
    return s.data_dir


@pytest.fixture
def run(data_dir):
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = Settings(data_dir=data_dir)

    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_snapshots_writes_the_table_and_reports_the_split(run, data_dir):
    res = run("snapshots", "--every", "7", "--json")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    table = pd.read_parquet(data_dir / "snapshots" / "snapshots.parquet")
    assert rep["rows"] == len(table) > 0 and rep["feature_set_version"] == FEATURE_SET_VERSION
    assert set(table.split.unique()) <= {"train", "val", "test", "gap"}
    assert {"user_id", "cutoff", "partition", "label", *FEATURE_NAMES} <= set(table.columns)
    assert rep["parts"]["test"]["rows"] == (table.split == "test").sum()
    assert json.loads((data_dir / "snapshots" / "snapshots.split.json").read_text())["rows"] == len(table)

    pretty = run("snapshots", "--horizon", "20", "--every", "5")
    assert pretty.exit_code == 0 and "positive" in pretty.output and "train" in pretty.output


def test_features_of_one_user_and_the_summary(run):
    one = run("features", "--at", "2026-03-01", "--user", "u0000003", "--json")
    assert one.exit_code == 0, one.output
    got = json.loads(one.output)
    assert got["at"] == "2026-03-01T00:00:00+00:00" and set(got["features"]) == set(FEATURE_NAMES)

    table = run("features", "--at", "2026-03-01T12:00:00", "--user", "u0000003")
    assert table.exit_code == 0 and "sessions_7d" in table.output

    summary = run("features", "--json")
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.output)["active_users"] > 100
    assert "watch_slope_14d" in run("features", "--at", "2026-02-15").output


def test_mistakes_are_one_line_errors(run):
    unknown = run("features", "--user", "nobody")
    assert unknown.exit_code == 1 and "no events" in unknown.output
    bad_date = run("features", "--at", "March")
    assert bad_date.exit_code == 2
    too_long = run("snapshots", "--horizon", "200")
    assert too_long.exit_code == 1 and "simulate more days" in too_long.output


def test_an_instant_past_the_log_is_warned(run):
    """`--at 2030-01-01` (a typo'd year) printed every session feature 0 without a word."""
    late = run("features", "--at", "2030-01-01", "--json")
    assert late.exit_code == 0
    assert "warning: --at 2030-01-01 is" in late.output and "days after the log's last event (2026-05-30)" in late.output
    assert "warning" not in run("features", "--at", "2026-03-01", "--json").output
