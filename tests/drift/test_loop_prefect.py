"""The ground-truth loop end to end on a real Prefect server (issue 18), in compressed time
(:data:`pipeline.simulator.scenarios.COMPRESSED`: ``content_outage`` on day 60 of 100, 3,000
users, a 7-day label horizon):

drift -> Critical -> a drift episode with its onset -> the retrain deferred until post-onset
labels matured -> ``flows.retrain.PrefectRunRequester`` creates a real ``train/weekly`` run
(``prefect server start`` + ``python -m flows.serve``) with the post-onset window, gate and
the episode's id -> the real train flow trains, gates on post-onset labels, promotes (moves
``churn@champion`` in the MLflow registry) and records ``gate promoted`` beside the episode
-> the stream, whose champion comes from the registry (``RegistryChampion``, as in
production), switches to the new version -> the episode closes -> realised performance (labels
matured after the fact) recovers.

The replay pauses while the run trains (event time stands still; see
:mod:`pipeline.testing.loop`). The timeline is printed (``-s``): the closing note of issue 18
quotes it.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.drift import episodes as ep

pytestmark = pytest.mark.slow  # ~4-7 min on a shared 2-core machine
ROOT = Path(__file__).resolve().parents[2]


def test_a_drift_retrain_is_a_real_train_run_that_is_promoted_adopted_and_recovers_realised_auc(tmp_path):
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from flows.retrain import PrefectRunRequester
    from pipeline.simulator.scenarios import COMPRESSED as T
    from pipeline.stream.champion import RegistryChampion
    from pipeline.testing.loop import Orchestrated, closed_loop, describe, store_url
    from pipeline.testing.prefect_server import LocalPrefect

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "mlruns").mkdir()
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    # the deployment's own parameters; the drift request adds start/end/every_days/gate_from/episode_id
    train_params = {"tracking_uri": uri, "horizon_days": T.horizon_days, "candidates": ["logistic"],
                    "leaky_control": False, "shap_sample": 200, "folds": 3}  # fmt: skip
    env = {"CHURN_DATA_DIR": str(data), "CHURN_MLFLOW_TRACKING_URI": uri, "CHURN_STORE_URL": store_url(data),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    with LocalPrefect(tmp_path / "prefect", env) as pf:
        # served once the server answers, while the history is simulated
        pf.start_when_ready([sys.executable, "-m", "flows.serve", "--data-dir", str(data), "--train-params",
                             json.dumps(train_params)], cwd=ROOT)  # fmt: skip
        retrain = Orchestrated(create=PrefectRunRequester(), wait=lambda run_id: pf.wait_run(run_id, timeout=900),
                               ready=lambda: pf.wait_deployment("train/weekly"))  # fmt: skip
        with temporary_settings({PREFECT_API_URL: pf.api, PREFECT_HOME: tmp_path / "prefect-client"}):
            run = closed_loop(data, T.drift, T.drift_day, users=T.users, days=T.days, seed=3,
                              horizon_days=T.horizon_days, retrain_after_days=T.retrain_after_days,
                              min_churners=T.min_churners, tracking_uri=uri, champion=RegistryChampion(uri),
                              retrain=retrain)  # fmt: skip
        print("\n" + describe(run))
        print(f"train runs: {[{k: v for k, v in r.items() if k != 'parameters'} for r in run.runs]}")
        train_runs = pf.runs("weekly")
        (flow_run,) = train_runs  # one episode, one train run
        deployment = pf.wait_deployment("train/weekly")

    d = run.decisions
    kinds = d["decision"].tolist()
    episode = run.episodes.iloc[0]
    eid, onset = str(episode["episode_id"]), episode["onset"].date()
    # drift detected near the (simulated) change; the retrain deferred until post-onset labels matured
    assert run.drift_day - timedelta(days=7) <= onset <= run.drift_day + timedelta(days=3)
    opened = kinds.index(ep.OPENED)
    assert kinds[opened + 1] == ep.DEFERRED and d["due"].iloc[opened + 1].date() == onset + timedelta(days=21)
    requested = kinds.index(ep.REQUESTED)
    assert d["time"].iloc[requested].date() >= onset + timedelta(days=21)  # not before labels matured
    # sent: a real train/weekly run was created, with the post-onset window, gate and episode
    sent = d[d["decision"] == ep.SENT].iloc[0]
    assert sent["run"] == flow_run["id"] == run.runs[0]["id"] and f"run {flow_run['id']} created" in sent["reason"]
    assert flow_run["deployment_id"] == deployment["id"]
    p = flow_run["parameters"]
    assert p["episode_id"] == eid and p["gate_from"] == onset.isoformat()
    assert p["end"] == (d["time"].iloc[requested] - timedelta(days=1)).date().isoformat()  # not the future
    # the real train flow completed, its gate promoted on post-onset labels, and it said so beside the episode
    assert flow_run["state_type"] == run.runs[0]["state"] == "COMPLETED"
    gate = d[d["decision"].str.startswith("gate")]
    assert gate["decision"].tolist() == [ep.GATE_PROMOTED]
    assert gate["episode_id"].iloc[0] == eid and gate["run"].iloc[0] == flow_run["id"]
    assert gate["source"].iloc[0] == "train" and gate["model_version"].iloc[0] == "1"
    assert run.gate["decision"] == "promoted" and run.gate["run"] == flow_run["id"]
    # the registry's champion moved; the stream adopted it: its later scores carry the new version
    assert run.promoted_version == "2" == RegistryChampion(uri).current().version
    later = run.realised[run.realised["day"].dt.date >= run.promoted_on]
    assert run.versions == ["1", "2"] and set(later["model_version"]) >= {"2"}
    # the episode closed; realised performance, on labels that matured after the fact, recovered
    assert episode["status"] == "closed" and ep.CLOSED in kinds
    assert run.recovery() > 0, describe(run)
