"""How to launch the dashboard: the streamlit process's argv and environment, and a foreground runner.

The settings are resolved in the caller's directory and handed to Streamlit as absolute
``CHURN_*`` values, because Streamlit runs from the repository root (where
``.streamlit/config.toml`` lives). Used by ``churn dashboard`` and the local stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def command(settings: object, address: str, port: int, refresh: float) -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the streamlit process for ``settings`` (a pipeline.config.Settings)."""
    argv = [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"),
            "--server.headless", "true", "--server.address", address, "--server.port", str(port),
            "--browser.gatherUsageStats", "false"]  # fmt: skip
    env = {
        **os.environ,
        "CHURN_DATA_DIR": str(Path(settings.data_dir).resolve()),  # type: ignore[attr-defined]
        "CHURN_STORE_URL": settings.resolved_store_url,  # type: ignore[attr-defined]
        "CHURN_MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri,  # type: ignore[attr-defined]
        "CHURN_DASHBOARD_REFRESH_S": str(refresh),
    }
    return argv, env


def serve(argv: list[str], env: dict[str, str]) -> int:
    """Run Streamlit until it exits; SIGTERM and Ctrl-C stop it too (never an orphan)."""
    proc = subprocess.Popen(argv, cwd=REPO, env=env)

    def _forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    old = signal.signal(signal.SIGTERM, _forward)
    try:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to both; make sure it ends
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 130
    finally:
        signal.signal(signal.SIGTERM, old)
