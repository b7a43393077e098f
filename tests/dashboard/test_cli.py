"""`churn dashboard` (churn.cli.dashboard) builds the streamlit command line (dashboard.launch)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from churn.cli import dashboard as dashboard_cli
from dashboard import launch
from pipeline.config import Settings


def test_command_binds_localhost_with_absolute_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv, env = launch.command(Settings(data_dir=Path("rel")), "127.0.0.1", 8599, 3.0)
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

    dashboard_cli.register(app)
    out = CliRunner().invoke(app, ["dashboard", "--help"])
    assert out.exit_code == 0 and "--port" in out.output


def test_sigterm_to_churn_dashboard_stops_streamlit_too(tmp_path) -> None:
    """`churn dashboard` runs Streamlit as a child: a SIGTERM to it must not orphan Streamlit."""
    import contextlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CHURN_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "churn.cli", "dashboard", "--port", str(port)],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.5)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "streamlit runs as a child process"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(os.path.exists(f"/proc/{c}") for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(os.path.exists(f"/proc/{c}") for c in children), "streamlit outlived churn dashboard"
    finally:  # whatever happened, nothing of the group survives the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
