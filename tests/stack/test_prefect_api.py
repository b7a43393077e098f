"""The stack's Prefect REST calls ask a busy server again, as Prefect's own client does."""

from __future__ import annotations

import pytest

from churn.stack import prefect_api
from churn.stack.state import StackError


def _answers(monkeypatch, replies):
    calls = []

    def request(url, body=None, timeout=3.0, method=None):
        calls.append(url)
        return replies.pop(0)

    monkeypatch.setattr(prefect_api.http, "request", request)
    return calls


def test_a_busy_server_is_asked_again_and_the_run_is_created(monkeypatch) -> None:
    calls = _answers(monkeypatch, [(503, {"exception_message": "Service Unavailable"}), (200, {"id": "d1"}),
                                   (503, {"exception_message": "Service Unavailable"}), (429, None),
                                   (201, {"id": "r1", "name": "calm-fox"})])  # fmt: skip
    waits = []
    monkeypatch.setattr(prefect_api.time, "sleep", waits.append)
    run = prefect_api.run_deployment("http://127.0.0.1:1/api", "train/weekly", {"horizon_days": 14})
    assert run == {"id": "r1", "name": "calm-fox"}
    assert calls[0].endswith("/deployments/name/train/weekly") and calls[2].endswith("/deployments/d1/create_flow_run")
    assert len(calls) == 5 and waits == [1.0, 1.0, 2.0]


def test_a_server_that_stays_busy_or_refuses_says_so(monkeypatch) -> None:
    monkeypatch.setattr(prefect_api.time, "sleep", lambda s: None)
    calls = _answers(monkeypatch, [(503, {"exception_message": "Service Unavailable"})] * 5)
    with pytest.raises(StackError, match="answered 503 x: .*Service Unavailable"):
        prefect_api._call("http://127.0.0.1:1/api/flow_runs/1", what="x")
    assert len(calls) == 5  # 1 + 4 retries, then the error
    calls = _answers(monkeypatch, [(404, {"detail": "not found"})])
    with pytest.raises(StackError, match="answered 404"):
        prefect_api._call("http://127.0.0.1:1/api/flow_runs/1")
    assert len(calls) == 1  # not a busy server: no retry
