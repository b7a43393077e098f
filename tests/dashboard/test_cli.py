"""`churn dashboard` builds the streamlit command line from the settings."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from dashboard import cli
from pipeline.config import Settings


def test_command_binds_localhost_with_absolute_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv, env = cli.command(Settings(data_dir=Path("rel")), "127.0.0.1", 8599, 3.0)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("dashboard/app.py")
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "8599"
    assert env["CHURN_DATA_DIR"] == str(tmp_path / "rel")
    assert env["CHURN_STORE_URL"] == f"sqlite:///{tmp_path / 'rel' / 'churn.db'}"
    assert env["CHURN_DASHBOARD_REFRESH_S"] == "3.0"


def test_register_adds_the_command() -> None:
    app = typer.Typer()

    @app.callback()
    def main(ctx: typer.Context) -> None:
        ctx.obj = Settings()

    cli.register(app)
    out = CliRunner().invoke(app, ["dashboard", "--help"])
    assert out.exit_code == 0 and "--port" in out.output
