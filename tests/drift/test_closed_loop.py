"""The event-driven closed loop (``retrain_policy="immediate"``, the ``churn.drift.detected``
event and the deployment's trigger), in two halves; the ground-truth loop with the episode
policy on a real server, whole, is ``test_loop_prefect.py``:

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


def test_drift_event_triggers_one_train_run_on_a_real_server_and_the_alias_moves(tmp_path):
    from pipeline.log import open_log
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history
    from pipeline.stream.champion import RegistryChampion
    from pipeline.stream.drift_hook import read_reference
    from pipeline.testing.prefect_server import LocalPrefect, wait_for

    data = tmp_path / "data"
    log = open_log(data / "log", "events", num_partitions=2)
    simulate_history(Simulator(SimConfig(users=1_500, days=70, seed=5)), log, data / "sim")
    log.close()
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    env = {"CHURN_DATA_DIR": str(data), "CHURN_MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(ROOT)}
    with LocalPrefect(tmp_path / "prefect", env) as pf:
        params = {"horizon_days": 7, "every_days": 3, "candidates": ["logistic"], "leaky_control": False,
                  "shap_sample": 200, "tracking_uri": uri}  # fmt: skip
        pf.wait_ready()  # serve exits if the server does not answer yet
        pf.start([sys.executable, "-m", "flows.serve", "--data-dir", str(data), "--train-params",
                  __import__("json").dumps(params)], cwd=ROOT)  # fmt: skip
        pf.wait_deployment("train/weekly", timeout=210)
        emit = subprocess.run([sys.executable, "-c", EMIT, str(tmp_path / "drift")], env=pf.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert emit.returncode == 0, emit.stderr[-2000:]
        assert emit.stdout.split() == ["Critical", "True", "Critical", "False"]
        (run,) = wait_for("the triggered train run", lambda: pf.runs("weekly"), 60, pf.procs, log=pf.log_tail)
        assert pf.wait_run(run["id"], timeout=240) == "COMPLETED", pf.log_tail(3000)
        time.sleep(3)  # one event, one run: nothing else was started
        assert len(pf.runs("weekly")) == 1
    champ = RegistryChampion(uri)
    info = champ.current()
    assert info is not None and info.version == "1"  # the gate promoted it: the alias moved
    ref = champ.export(info, tmp_path / "models")
    reference = read_reference(Path(ref.path))
    assert reference is not None and len(reference) > 500  # the next drift checks use its reference
