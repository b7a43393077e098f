"""A drift retrain tells the episode how it ended: the train flow records its gate outcome
beside the episode's decisions in the stream's store (issue 18). The whole path on a real
Prefect server is ``tests/drift/test_loop_prefect.py`` (slow)."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from pipeline.drift import episodes as ep
from pipeline.drift.config import DriftConfig
from pipeline.store import Store
from pipeline.training.gate import GateDecision

ONSET = datetime(2026, 3, 3, tzinfo=UTC)


@pytest.fixture
def episode(tmp_path):
    url = f"sqlite:///{tmp_path / 'churn.db'}"
    store = Store(url)
    eid = store.open_episode(model_version="1", onset=ONSET, opened_at=ONSET, reason="Critical drift",
                             now=datetime.now(UTC))  # fmt: skip
    store.close()
    return url, eid


def _decisions(url: str, eid: str):
    store = Store(url)
    try:
        return store.retrain_decisions(episode_id=eid)
    finally:
        store.close()


def test_the_gate_outcome_is_recorded_beside_the_episode_with_its_reason_and_run(episode):
    from flows.train import record_gate_outcome

    url, eid = episode
    promoted = GateDecision(True, "roc_auc 0.7781 >= champion 0.7299", {"roc_auc": 0.7781}, champion_version="1")
    assert record_gate_outcome.fn(url, eid, "2", promoted, date(2026, 3, 23), "flow-run-1")
    (row,) = _decisions(url, eid).to_dict("records")
    assert row["decision"] == ep.GATE_PROMOTED == "gate promoted"
    assert row["model_version"] == "1"  # the episode's champion, which v2 was compared with
    assert row["reason"] == "churn v2: roc_auc 0.7781 >= champion 0.7299"
    assert row["run"] == "flow-run-1" and row["source"] == "train"
    assert row["time"] == datetime(2026, 3, 24, tzinfo=UTC)  # the event time the training data ended

    rejected = GateDecision(False, "roc_auc 0.70 < champion 0.73", {"roc_auc": 0.70}, champion_version="1")
    record_gate_outcome.fn(url, eid, "3", rejected, None, "flow-run-2")  # an open window: recorded now
    rows = _decisions(url, eid)
    assert rows["decision"].tolist() == [ep.GATE_PROMOTED, ep.GATE_REJECTED]
    assert rows["time"].iloc[-1] > datetime(2026, 12, 1, tzinfo=UTC) and rows["run"].iloc[-1] == "flow-run-2"


def test_failing_to_record_the_gate_outcome_is_logged_and_does_not_fail_the_training(tmp_path, caplog):
    from flows.train import record_gate_outcome

    (tmp_path / "not-a-db").mkdir()  # a directory where the SQLite file should be
    url = f"sqlite:///{tmp_path / 'not-a-db'}"
    d = GateDecision(True, "first model", {}, champion_version=None)
    with caplog.at_level(logging.ERROR, logger="flows.train"):
        assert record_gate_outcome.fn(url, "e1", "2", d, date(2026, 3, 23), "flow-run-1") is None
    assert "could not record the gate outcome of v2 for drift episode e1" in caplog.text


def test_the_train_deployment_accepts_what_the_episode_policy_asks_for():
    """Prefect refuses a run with a parameter the flow lacks: the episode's id (and the window)
    the retrain policy sends must be parameters of ``train``."""
    from flows.train import train

    cfg = DriftConfig(retrain_lookback_days=28, retrain_every_days=1)
    params = ep.train_parameters(ONSET, cfg, "e1") | {"end": "2026-03-23"}
    valid = train.validate_parameters(params)
    assert valid["episode_id"] == "e1" and valid["gate_from"] == date(2026, 3, 3)
    assert valid["start"] == date(2026, 2, 3) and valid["end"] == date(2026, 3, 23)
