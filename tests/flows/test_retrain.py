"""The orchestrator's half of the loop: the retrain requester (Prefect event) and the train trigger.

The drift library only knows :class:`pipeline.drift.retrain.RetrainRequester`; these check the
implementation ``flows/`` supplies and the library's interface (no Prefect needed for those).
"""

from __future__ import annotations

import logging

import pytest

from flows.retrain import (
    DRIFT_EVENT,
    REQUESTER,
    NotDelivered,
    PrefectEventRequester,
    PrefectRunRequester,
    resource,
    train_trigger,
)
from pipeline.drift.retrain import LogOnly, RetrainRequest, as_requester, load_requester
from pipeline.errors import ConfigError

REQ = RetrainRequest("7", ("60% of features drifted >= critical 40%",), {"drifted_share": 0.6})


def test_without_a_prefect_api_the_request_is_refused_not_silently_dropped():
    sent = []
    with pytest.raises(NotDelivered, match="no PREFECT_API_URL: churn.drift.detected for model 7 not sent"):
        PrefectEventRequester(emit=lambda **kw: sent.append(kw), api_url=lambda: None).request(REQ)
    assert sent == []  # no temporary API server started inside a stream worker


def test_the_event_carries_the_model_resource_the_payload_and_the_reasons():
    sent = []
    PrefectEventRequester(emit=lambda **kw: sent.append(kw) or object(), api_url=lambda: "http://127.0.0.1:1/api"
                          ).request(REQ)  # fmt: skip
    assert sent == [{"event": DRIFT_EVENT, "resource": resource("7"),
                     "payload": {"drifted_share": 0.6, "because": list(REQ.because)}}]
    assert resource("7") == {"prefect.resource.id": "churn.model.7", "prefect.resource.name": "churn v7",
                             "churn.model.version": "7"}


def test_the_stream_flow_configures_the_prefect_requester_by_import_path():
    assert isinstance(load_requester(REQUESTER), PrefectRunRequester)
    assert isinstance(load_requester("flows.retrain:PrefectEventRequester"), PrefectEventRequester)
    assert isinstance(load_requester(""), LogOnly)
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_requester("flows.retrain:Nope")
    with pytest.raises(ConfigError, match="package.module:Factory"):
        load_requester("flows.retrain")


def test_log_only_says_who_was_not_told(caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.drift.retrain"):
        as_requester(None).request(REQ)
    assert "retrain wanted for model 7 because 60% of features drifted" in caplog.text
    assert "no retrain requester is configured" in caplog.text


def test_train_trigger_matches_the_drift_event_and_fits_the_train_deployment():
    from uuid import uuid4

    from prefect.events.schemas.events import Resource

    from flows.train import train

    trig = train_trigger()
    deployment = train.to_deployment(name="weekly", concurrency_limit=1, triggers=[trig])  # what serve.py adds
    assert deployment.triggers[0].expect == {DRIFT_EVENT}
    trig.set_deployment_id(uuid4())
    automation = trig.as_automation()
    assert automation.name == "retrain-on-drift" and automation.trigger.posture == "Reactive"
    trigger = automation.trigger
    assert trigger.expect == {DRIFT_EVENT}  # the event name filter
    assert trigger.match.matches(Resource({"prefect.resource.id": "churn.model.7"}))
    assert not trigger.match.matches(Resource({"prefect.resource.id": "prefect.flow-run.1"}))


def test_an_event_prefect_did_not_accept_is_reported():
    with pytest.raises(NotDelivered, match="did not accept"):
        PrefectEventRequester(emit=lambda **kw: None, api_url=lambda: "http://127.0.0.1:1/api").request(REQ)


def test_the_run_requester_creates_a_train_run_with_the_post_onset_window_and_returns_its_id():
    from types import SimpleNamespace

    made = []
    req = RetrainRequest("7", ("labelled post-onset data",), {"train_parameters": {"start": "2026-07-03",
                                                                                   "gate_from": "2026-07-03"}})
    ask = PrefectRunRequester(run=lambda name, params: made.append((name, params)) or SimpleNamespace(id="abc", name="x"),
                              api_url=lambda: "http://127.0.0.1:1/api")  # fmt: skip
    assert ask.request(req) == "abc"
    assert made == [("train/weekly", {"start": "2026-07-03", "gate_from": "2026-07-03"})]
    with pytest.raises(NotDelivered, match="no PREFECT_API_URL: no train/weekly run created for model 7"):
        PrefectRunRequester(run=lambda *a: made.append(a), api_url=lambda: None).request(req)
    with pytest.raises(NotDelivered, match="created no train/weekly run"):
        PrefectRunRequester(run=lambda *a: None, api_url=lambda: "http://x/api").request(req)
    assert len(made) == 1
