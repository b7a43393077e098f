"""The closed loop end to end, in two halves (the whole loop on a real server does not fit
the ~2 min a test may take here):

1. stream + drift + event: simulate a history with the ``content_outage`` scenario from a
   known day, train the logistic candidate on the days before it (as ``train`` does; its
   reference sample too), stream the whole log through a worker with drift checks on:
   no Critical check before the scenario, Critical after it, and exactly one
   ``churn.drift.detected`` (the retrain cooldown), recorded on the stored run.
2. event -> trigger -> train on a real Prefect server (``prefect server start`` +
   ``python -m flows.serve``): critical checks emit through Prefect, the ``train/weekly``
   deployment's trigger starts exactly one run, the gate promotes, the alias moves, and
   the stream's champion source exports the new version with its reference.

The switch of a running worker to a new champion and its reference is tested in
``test_drift_hook.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.drift.config import DriftConfig
from pipeline.testing.drift import stream_checks

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DRIFT_DAY = 70


def test_stream_detects_the_outage_after_it_starts_and_asks_for_one_retrain(tmp_path):
    events: list = []
    cfg = DriftConfig(executor="inline", full_report_every=0, warmup_days=58, retrain_policy="immediate")  # checks from day ~59: fewer, same rule
    checks = stream_checks(tmp_path, "content_outage", DRIFT_DAY, users=2_000, days=85, seed=3, horizon_days=7,
                           every_days=3, train_end_day=DRIFT_DAY, config=cfg, requester=events.append)
    before = [c for c in checks if c.day <= DRIFT_DAY]  # the window of day d holds users at its midnight
    after = [c for c in checks if c.day > DRIFT_DAY]
    print("\n".join(f"day {c.day}: {c.level} {c.drifted_share:.0%} risk {c.prediction_score:.3f}" for c in checks))
    assert len(before) >= 8 and len(after) >= 6
    assert all(c.level != "Critical" for c in before)  # Warnings are the documented false-alarm rate
    assert sum(c.level != "Healthy" for c in before) <= 2
    first = next(c for c in after if c.level == "Critical")
    assert first.day <= DRIFT_DAY + 3 and {"sessions_7d", "sessions_per_day_7d"} <= set(first.drifted)
    assert sum(c.level == "Critical" for c in after) >= len(after) - 1
    assert [c.retrain_requested for c in checks].count(True) == 1 and first.retrain_requested
    assert len(events) == 1
    req = events[0]
    assert req.model_version == "1" and any("drift" in b for b in req.because)
    assert req.payload["level"] == "Critical" and req.payload["drifted_share"] >= 0.4


# -- 2. event -> trigger -> train on a real Prefect server --------------------------------
EMIT = """
import sys
import numpy as np, pandas as pd
from pipeline.drift.config import DriftConfig
from pipeline.drift.monitor import DriftMonitor
from pipeline.features.registry import FEATURE_NAMES
from tests.drift.helpers import fake_check
ref = pd.DataFrame(np.zeros((300, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
from flows.retrain import REQUESTER  # what the stream flow configures
cfg = DriftConfig(executor="inline", min_rows=10, full_report_every=0, retrain_requester=REQUESTER,
                  retrain_policy="immediate")
m = DriftMonitor(ref, "1", config=cfg, report_dir=__import__("pathlib").Path(sys.argv[1]), check=fake_check)
for day in range(2):  # two critical checks: the cooldown lets one event through
    m.observe(np.full((50, len(FEATURE_NAMES)), 5.0), np.full(50, 0.5), pd.Timestamp(2026, 3, 1 + day, tz="UTC"))
    out = m.submit() and m.poll()
    print(out[0].alert.level.value, out[0].retrain_requested, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ok, timeout: float, procs=()):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in procs:
            assert p.poll() is None, f"{p.args[:4]} exited ({p.returncode}) while waiting for {what}"
        got = ok()
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_drift_event_triggers_one_train_run_on_a_real_server_and_the_alias_moves(tmp_path):
    import httpx

    from pipeline.log import open_log
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history
    from pipeline.stream.champion import RegistryChampion
    from pipeline.stream.drift_hook import read_reference

    data = tmp_path / "data"
    log = open_log(data / "log", "events", num_partitions=2)
    simulate_history(Simulator(SimConfig(users=1_500, days=70, seed=5)), log, data / "sim")
    log.close()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "prefect").mkdir()
    env = dict(os.environ, PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true", MLFLOW_DISABLE_TELEMETRY="true",
               CHURN_DATA_DIR=str(data), CHURN_MLFLOW_TRACKING_URI=uri, PYTHONPATH=str(ROOT))  # fmt: skip
    bin_ = Path(sys.executable).parent
    out = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen([str(bin_ / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)  # fmt: skip
    serve = None
    try:
        _wait("the Prefect server", lambda: _get(f"{api}/health"), 120, [server])
        params = {"horizon_days": 7, "every_days": 3, "candidates": ["logistic"], "leaky_control": False,
                  "shap_sample": 200, "tracking_uri": uri}  # fmt: skip
        serve = subprocess.Popen([sys.executable, "-m", "flows.serve", "--data-dir", str(data), "--train-params",
                                  __import__("json").dumps(params)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                 cwd=ROOT)  # fmt: skip
        with httpx.Client(base_url=api, timeout=10) as client:
            _wait("the served train/weekly deployment",
                  lambda: client.get("/deployments/name/train/weekly").status_code == 200, 90, [server, serve])
            emit = subprocess.run([sys.executable, "-c", EMIT, str(tmp_path / "drift")], env=env, cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert emit.returncode == 0, emit.stderr[-2000:]
            assert emit.stdout.split() == ["Critical", "True", "Critical", "False"]

            def runs():
                r = client.post("/flow_runs/filter", json={"deployments": {"name": {"any_": ["weekly"]}}})
                return r.json() if r.status_code == 200 else []

            _wait("the triggered train run", runs, 60, [server, serve])
            done = _wait("the train run to finish",
                         lambda: [x for x in runs() if x["state_type"] in ("COMPLETED", "FAILED", "CRASHED")], 240,
                         [server, serve])  # fmt: skip
            assert done[0]["state_type"] == "COMPLETED", (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(3)  # one event, one run: nothing else was started
            assert len(runs()) == 1
        champ = RegistryChampion(uri)
        info = champ.current()
        assert info is not None and info.version == "1"  # the gate promoted it: the alias moved
        ref = champ.export(info, tmp_path / "models")
        reference = read_reference(Path(ref.path))
        assert reference is not None and len(reference) > 500  # the next drift checks use its reference
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)
        out.close()


def _get(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
