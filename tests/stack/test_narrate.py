"""The demo narrates the loop (issue 19): one line when drift requests a retrain, one when that
training starts, one with the gate's decision and both scores -- each read from what the store,
Prefect and the MLflow registry recorded, each said once."""

from __future__ import annotations

import mlflow

from churn.stack.narrate import Narrator
from pipeline.config import Settings
from pipeline.drift.loop import RETRAIN_REQUESTED, RETRAIN_SKIPPED
from tests.drift.test_store_drift import result


def _run(rid: str, state: str, by: str | None = None, name: str = "brisk-otter") -> dict:
    return {"id": rid, "name": name, "state": {"type": state, "message": "boom" if state == "FAILED" else ""},
            "created_by": {"type": "AUTOMATION", "display_value": by} if by else None}


def test_drift_request_retrain_start_and_gate_are_each_said_once_from_the_records(tmp_path) -> None:
    from churn.stack.demo import narrator
    from pipeline import registry
    from pipeline.store import Store

    settings = Settings(data_dir=tmp_path / "data",
                        mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")  # fmt: skip
    with Store(settings.resolved_store_url) as st:
        st.record_drift_run(result(0, 0.5), level="Critical", reasons=["50% of features drifted",
                            f"{RETRAIN_SKIPPED}: cooldown 2:00:00 left"])  # not a request: not said
        st.record_drift_run(result(10, 0.5), level="Critical", reasons=["50% of features drifted",
                            f"{RETRAIN_REQUESTED} (PrefectEventRequester)"])  # fmt: skip
    runs: list[dict] = [_run("first", "COMPLETED")]
    n = narrator(settings, "http://127.0.0.1:9/api")  # Prefect is replaced below; store and registry are real
    drift_src, _, gated_src = n.sources
    n.sources = (drift_src, lambda: runs, gated_src)
    n.mark_said(["run:first"])  # the demo's own first training, narrated as it ran

    lines = n.poll()
    assert lines == ["drift: Critical on champion v3 (1 of 2 features drifted: 50% of features drifted) - retrain "
                     "requested (check at 2026-03-01 00:10 UTC)"]  # fmt: skip

    runs.append(_run("second", "PENDING", "retrain-on-drift"))
    assert n.poll() == []  # not started yet
    runs[-1] = _run("second", "RUNNING", "retrain-on-drift")
    assert n.poll() == ["retrain started: train run brisk-otter (created by retrain-on-drift, deployment train/weekly)"]

    registry.configure(settings.resolved_mlflow_uri)
    client = mlflow.MlflowClient()
    client.create_registered_model(registry.MODEL_NAME)
    mv = client.create_model_version(registry.MODEL_NAME, "file:///nowhere", tags={
        "gate.decision": "rejected", "gate.reason": "lift_10 4.5000 < champion 4.7140",
        "gate.challenger.roc_auc": "0.812000", "gate.challenger.lift_10": "4.500000",
        "gate.champion.roc_auc": "0.805000", "gate.champion.lift_10": "4.714000", "gate.champion_version": "1",
        "gate.window": "2026-04-20..2026-05-18"})
    assert n.poll() == [f"gate: churn v{mv.version} REJECTED against champion v1, both scored on the test window "
                        "2026-04-20..2026-05-18: ROC-AUC 0.8120 vs 0.8050 (ok), lift@10% 4.50 vs 4.71 (worse)"]
    runs[-1] = _run("second", "COMPLETED", "retrain-on-drift")
    assert n.poll() == []  # everything said once
    mlflow.set_tracking_uri(None)


def test_a_failed_training_run_is_said_with_its_message() -> None:
    n = Narrator(lambda: [], lambda: [_run("x", "FAILED", "retrain-on-drift", "sad-cat")], lambda: [])
    assert n.poll() == ["retrain started: train run sad-cat (created by retrain-on-drift, deployment train/weekly)",
                        "train run sad-cat ended failed: boom"]
    assert n.poll() == []


def test_episode_deferral_and_request_are_said_once_per_episode_and_due_date(tmp_path) -> None:
    """A deferral is recorded at every check; the demo says it once per due date."""
    from datetime import UTC, datetime, timedelta

    from churn.stack.demo import narrator
    from pipeline.drift.episodes import DEFERRED, GATE_PROMOTED, OPENED, SENT
    from pipeline.store import Store

    settings = Settings(data_dir=tmp_path / "data")
    t0 = datetime(2026, 3, 3, tzinfo=UTC)
    due = datetime(2026, 3, 24, tzinfo=UTC)
    with Store(settings.resolved_store_url) as st:
        ep = st.open_episode(model_version="1", onset=t0, opened_at=t0, reason="plan_price drifted 0.41", now=t0)
        st.record_retrain_decision(time=t0, model_version="1", decision=OPENED, reason="plan_price drifted 0.41",
                                   episode_id=ep, now=t0)
        for day in range(3):  # three checks, the same due date
            st.record_retrain_decision(time=t0 + timedelta(days=day), model_version="1", decision=DEFERRED,
                                       reason="labels mature on 2026-03-24", episode_id=ep, due=due,
                                       now=t0 + timedelta(days=day))
    n = narrator(settings, "http://127.0.0.1:9/api")
    drift_src, _, gated_src = n.sources
    n.sources = (drift_src, lambda: [], lambda: [])
    assert n.poll() == ["drift episode opened on champion v1 (event time 2026-03-03): plan_price drifted 0.41",
                        "retrain deferred until 2026-03-24 (event time): labels mature on 2026-03-24"]
    with Store(settings.resolved_store_url) as st:
        st.record_retrain_decision(time=t0 + timedelta(days=5), model_version="1", decision=DEFERRED,
                                   reason="labels mature on 2026-03-24", episode_id=ep, due=due, now=t0)
        st.record_retrain_decision(time=due, model_version="1", decision=SENT, reason="122 churners since onset",
                                   episode_id=ep, run="brisk-otter", now=due)
        st.record_retrain_decision(time=due, model_version="1", decision=GATE_PROMOTED, reason="v2 promoted",
                                   episode_id=ep, now=due)  # said from the registry's tags instead
    assert n.poll() == ["retrain sent (run brisk-otter): 122 churners since onset"]
    assert n.poll() == []


def test_a_run_the_drift_retrain_policy_created_says_so_not_a_user() -> None:
    from flows.retrain import DRIFT_RETRAIN_TAG

    policy = {**_run("p", "RUNNING"), "tags": ["churn", DRIFT_RETRAIN_TAG]}  # created by PrefectRunRequester
    manual = _run("m", "RUNNING", name="calm-fox")  # `prefect deployment run`, no automation
    n = Narrator(lambda: [], lambda: [policy, manual], lambda: [])
    assert n.poll() == ["retrain started: train run brisk-otter (created by the drift retrain policy, deployment "
                        "train/weekly)", "retrain started: train run calm-fox (created by a user, deployment "
                        "train/weekly)"]  # fmt: skip
