"""The whole local stack, for real (slow): `churn up --detach` on free ports in a temp data dir
(Prefect server, the serve process, MLflow UI, dashboard), the `train/weekly` deployment run
through the Prefect API, `stream/live` started, live events from `churn produce`, scores and
stream metrics in the store, the dashboard healthy, then `churn down` leaves no process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from churn.stack import http, prefect_api, procs
from churn.stack.demo import group_lag, store_summary
from churn.stack.state import load, state_path
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history

pytestmark = pytest.mark.slow


def churn(data, env, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "churn.cli", "--data-dir", str(data), *args], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_up_train_stream_down(tmp_path) -> None:
    data = tmp_path / "data"
    log = open_log(data / "log", "events", num_partitions=2)
    try:  # 3,000 users x 100 days: enough for a 14-day-horizon split; the saved population feeds `produce`
        simulate_history(Simulator(SimConfig(users=3_000, days=100, seed=7)), log, data / "sim")
    finally:
        log.close()
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    ports = {"prefect": procs.free_port(), "mlflow": procs.free_port(), "dashboard": procs.free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CHURN_"))}
    env |= {"CHURN_MLFLOW_TRACKING_URI": uri, "CHURN_DRIFT_ENABLED": "false"}  # drift has its own tests
    settings = Settings(data_dir=data, mlflow_tracking_uri=uri)
    pids: set[int] = set()
    try:
        up = churn(data, env, "up", "--detach", "--prefect-port", str(ports["prefect"]), "--mlflow-port",
                   str(ports["mlflow"]), "--dashboard-port", str(ports["dashboard"]))  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        api = f"http://127.0.0.1:{ports['prefect']}/api"
        assert f"export PREFECT_API_URL={api}" in up.stdout
        assert "no champion model yet" in up.stdout  # fresh registry: says to train
        state = load(state_path(data))
        assert {s.name for s in state.services} == {"prefect", "serve", "mlflow", "dashboard"}
        assert all(s.start_s is not None for s in state.services)
        print({s.name: s.start_s for s in state.services})

        t = time.monotonic()
        run = prefect_api.run_deployment(api, "train/weekly", {"horizon_days": 14, "candidates": ["xgboost"],
                                                               "leaky_control": False, "shap_sample": 200})  # fmt: skip
        run = prefect_api.wait(api, run["id"], {"COMPLETED"}, timeout_s=900)
        assert prefect_api.state_of(run)[0] == "COMPLETED", procs.tail(data / "stack" / "logs" / "serve.log", 40)
        print(f"train via deployment: {time.monotonic() - t:.1f} s")
        status, body = http.request(f"http://127.0.0.1:{ports['mlflow']}/api/2.0/mlflow/registered-models/alias"
                                    "?name=churn&alias=champion")  # fmt: skip
        assert status == 200 and body["model_version"]["version"] == "1"  # the MLflow UI serves the same store

        stream = prefect_api.run_deployment(api, "stream/live")
        prefect_api.wait(api, stream["id"], {"RUNNING"}, timeout_s=300)
        produce = churn(data, env, "produce", "--rate", "0", "--days", "3")
        assert produce.returncode == 0, produce.stderr
        end = time.monotonic() + 300
        while (group_lag(settings) > 0 or not store_summary(settings)["metric_rows"]) and time.monotonic() < end:
            time.sleep(2)
        summary = store_summary(settings)
        print(summary)
        assert group_lag(settings) == 0
        assert summary["users_scored"] > 2_000 and summary["model_versions"] == ["1"]
        assert summary["metric_rows"] > 0
        assert summary["newest_event"] > "2026-04-11"  # the live days were scored, not just the history
        assert http.ok(f"http://127.0.0.1:{ports['dashboard']}/_stcore/health")
        st = churn(data, env, "status")
        assert st.returncode == 0 and st.stdout.count("healthy") == 4, st.stdout

        for s in load(state_path(data)).services:
            pids |= procs.family(s.pid)
        assert len(pids) > 4  # the stream run and its workers are children of serve
        t = time.monotonic()
        down = churn(data, env, "down")
        assert down.returncode == 0, down.stderr
        print(f"down: {time.monotonic() - t:.1f} s\n{down.stdout}")
        assert "cancelling flow run" in down.stdout
        assert not [p for p in pids if procs.alive(p)]
        assert not state_path(data).exists()
        for port in ports.values():
            assert procs.port_free(port)
    finally:
        if state_path(data).exists():
            churn(data, env, "down", "--grace", "5")
        for p in pids:
            if procs.alive(p):
                os.kill(p, 9)
