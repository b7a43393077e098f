"""What `churn up` starts: one :class:`ServiceSpec` per process, built from the settings.

* ``prefect``   - ``prefect server start`` (API + UI), ``PREFECT_HOME`` and its SQLite
  database under ``<data>/prefect``; healthy when ``/api/health`` answers.
* ``serve``     - ``python -m flows.serve``: serves ``train/weekly``, ``stream/live`` and
  ``stream/catch-up`` against that server; healthy when the API lists them.
* ``mlflow``    - ``mlflow server`` on the tracking store (``/health``); not started when the
  tracking URI is already an HTTP server.
* ``dashboard`` - the Streamlit app (``/_stcore/health``), linked to the two UIs above.

Only argv/env are computed here; nothing is started.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pipeline.config import Settings

HOST = "127.0.0.1"
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PYTHONUNBUFFERED": "1",
}
SERVED = ("train/weekly", "stream/live", "stream/catch-up")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    url: str  # what a human opens ('' = nothing to open)
    health: str  # GET this; 2xx = healthy
    port: int | None = None  # bound by the service (checked free before start)
    port_flag: str = ""  # how to change it: "--prefect-port / CHURN_PREFECT_PORT"
    after: tuple[str, ...] = ()  # start only once these are healthy
    extra_health: tuple[str, ...] = field(default=())  # further URLs that must answer 2xx


def _tool(name: str) -> str:
    """The console script of the running interpreter's environment (e.g. .venv/bin/prefect)."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def prefect_api_url(port: int) -> str:
    return f"http://{HOST}:{port}/api"


def client_env(settings: Settings, ports: Mapping[str, int]) -> dict[str, str]:
    """Variables another shell needs to talk to this stack (printed as ``export`` lines)."""
    return {
        "PREFECT_API_URL": prefect_api_url(ports["prefect"]),
        "CHURN_DATA_DIR": str(settings.data_dir.resolve()),
        "CHURN_MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri,
    }


def artifact_root(tracking_uri: str) -> str | None:
    """Where a SQLite store keeps artifacts (as pipeline.registry.configure sets them)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    return None


def build(settings: Settings, ports: Mapping[str, int], base_env: Mapping[str, str] | None = None) -> list[ServiceSpec]:
    """The services of the stack, in start order, for ``settings`` and ``ports``
    (keys ``prefect``, ``mlflow``, ``dashboard``)."""
    data = settings.data_dir.resolve()
    base = {**(os.environ if base_env is None else base_env), **QUIET}
    churn = {
        "CHURN_DATA_DIR": str(data),
        "CHURN_TOPIC": settings.topic,
        "CHURN_STORE_URL": settings.resolved_store_url,
        "CHURN_MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri,
    }
    prefect_home = str(data / "prefect")
    api = prefect_api_url(ports["prefect"])
    prefect_env = {**base, "PREFECT_HOME": prefect_home, "PREFECT_API_URL": api,
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # fmt: skip
    prefect_env.pop("PREFECT_API_KEY", None)
    specs = [
        ServiceSpec(
            "prefect",
            [_tool("prefect"), "server", "start", "--host", HOST, "--port", str(ports["prefect"])],
            prefect_env,
            url=f"http://{HOST}:{ports['prefect']}",
            health=f"{api}/health",
            port=ports["prefect"],
            port_flag="--prefect-port / CHURN_PREFECT_PORT",
        ),
        ServiceSpec(
            "serve",
            [sys.executable, "-m", "flows.serve", "--data-dir", str(data)],
            {**prefect_env, **churn},
            url=f"http://{HOST}:{ports['prefect']}/deployments",
            health=f"{api}/deployments/name/{SERVED[0]}",
            extra_health=tuple(f"{api}/deployments/name/{d}" for d in SERVED[1:]),
            after=("prefect",),
        ),
    ]
    uri = settings.resolved_mlflow_uri
    mlflow_url = uri if urlparse(uri).scheme in ("http", "https") else f"http://{HOST}:{ports['mlflow']}"
    if urlparse(uri).scheme not in ("http", "https"):
        # the backend URI may hold a database password: mlflow reads it from the environment
        # (MLFLOW_BACKEND_STORE_URI), where `ps` does not show it
        argv = [_tool("mlflow"), "server", "--host", HOST, "--port", str(ports["mlflow"]), "--workers", "1"]
        if root := artifact_root(uri):
            argv += ["--default-artifact-root", root]
        specs.append(
            ServiceSpec(
                "mlflow",
                argv,
                {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_BACKEND_STORE_URI": uri},
                url=mlflow_url,
                health=f"{mlflow_url}/health",
                port=ports["mlflow"],
                port_flag="--mlflow-port / CHURN_MLFLOW_PORT",
            )
        )
    from dashboard.launch import command  # the one place that knows how to launch the app

    argv, env = command(settings, HOST, ports["dashboard"], 5.0)
    env = {**base, **{k: v for k, v in env.items() if k.startswith("CHURN_")}, **churn,
           "CHURN_MLFLOW_UI_URL": mlflow_url, "CHURN_PREFECT_UI_URL": f"http://{HOST}:{ports['prefect']}"}  # fmt: skip
    specs.append(
        ServiceSpec(
            "dashboard",
            argv,
            env,
            url=f"http://{HOST}:{ports['dashboard']}",
            health=f"http://{HOST}:{ports['dashboard']}/_stcore/health",
            port=ports["dashboard"],
            port_flag="--dashboard-port / CHURN_DASHBOARD_PORT",
        )
    )
    return specs

