"""The orchestrator's half of the closed loop: drift -> train deployment run.

:class:`PrefectRunRequester` is the :class:`~pipeline.drift.retrain.RetrainRequester` the
stream flow configures (by import path, ``REQUESTER``): when the retrain policy
(:mod:`pipeline.drift.episodes`) asks, it creates a ``train/weekly`` run with the request's
training window (``payload["train_parameters"]``: cutoffs and gate from the drift onset) and
returns the flow run's id -- the run exists, so the retrain cooldown may start.

:class:`PrefectEventRequester` emits ``churn.drift.detected`` (resource
``churn.model.<version>``) instead, for setups that react to events; :func:`train_trigger`
on the train deployment turns each such event into one run (with the deployment's own
parameters). It cannot know whether a run was created.

With no ``PREFECT_API_URL`` nothing is sent (Prefect would otherwise start a temporary API
server inside the stream worker, ~15-40 s) and the request raises, so the monitor logs that the
retrain wanted was not delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pipeline.drift.retrain import RetrainRequest

log = logging.getLogger(__name__)

DRIFT_EVENT = "churn.drift.detected"
RESOURCE_PREFIX = "churn.model."
REQUESTER = "flows.retrain:PrefectRunRequester"  # DriftConfig.retrain_requester of the stream flow
TRAIN_DEPLOYMENT = "train/weekly"
DRIFT_RETRAIN_TAG = "drift-retrain"  # on the runs PrefectRunRequester creates


class NotDelivered(RuntimeError):
    """The request could not be sent (no API configured, or the API refused it)."""


def resource(model_version: str) -> dict[str, str]:
    return {"prefect.resource.id": f"{RESOURCE_PREFIX}{model_version}",
            "prefect.resource.name": f"churn v{model_version}", "churn.model.version": str(model_version)}


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _emit(**event: Any) -> Any:
    from prefect.events import emit_event

    return emit_event(**event)


class PrefectEventRequester:
    """Emit ``churn.drift.detected`` for the request's model version (``emit``/``api_url``: tests)."""

    def __init__(self, emit: Callable[..., Any] = _emit, api_url: Callable[[], str | None] = _api_url) -> None:
        self.emit = emit
        self.api_url = api_url

    def warm(self) -> None:
        import prefect.events  # noqa: F401 - the first critical check would pay this on the hot path

    def request(self, req: RetrainRequest) -> None:
        if not self.api_url():
            raise NotDelivered(f"no PREFECT_API_URL: {DRIFT_EVENT} for model {req.model_version} not sent")
        payload = {**dict(req.payload), "because": list(req.because)}
        if self.emit(event=DRIFT_EVENT, resource=resource(req.model_version), payload=payload) is None:
            raise NotDelivered(f"Prefect did not accept {DRIFT_EVENT} for model {req.model_version}")


def _run_deployment(name: str, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(name=name, parameters=parameters, timeout=0, tags=["churn", DRIFT_RETRAIN_TAG])


class PrefectRunRequester:
    """Create a ``train/weekly`` run for the request; return its id (``run``/``api_url``: tests)."""

    def __init__(self, deployment: str = TRAIN_DEPLOYMENT, run: Callable[[str, dict[str, Any]], Any] = _run_deployment,
                 api_url: Callable[[], str | None] = _api_url) -> None:
        self.deployment = deployment
        self.run = run
        self.api_url = api_url

    def warm(self) -> None:
        import prefect.deployments  # noqa: F401 - not on the hot path at the first request

    def request(self, req: RetrainRequest) -> str:
        if not self.api_url():
            raise NotDelivered(f"no PREFECT_API_URL: no {self.deployment} run created for model {req.model_version}")
        params = dict(req.payload.get("train_parameters") or {})
        flow_run = self.run(self.deployment, params)
        run_id = getattr(flow_run, "id", None)
        if run_id is None:
            raise NotDelivered(f"Prefect created no {self.deployment} run for model {req.model_version}")
        log.info("retrain for model %s: %s run %s (%s)", req.model_version, self.deployment,
                 getattr(flow_run, "name", run_id), params or "the deployment's window")
        return str(run_id)


def train_trigger(enabled: bool = True, parameters: dict[str, Any] | None = None) -> Any:
    """The train deployment's trigger: one run per ``churn.drift.detected`` event.

    ``train.to_deployment(..., triggers=[train_trigger()])``. Storms are prevented where
    the event is emitted (the cooldown) and by the deployment's ``concurrency_limit=1``.
    """
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name="retrain-on-drift",
        description="Retrain when the stream reports critical drift of the champion's features.",
        enabled=enabled,
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
        posture="Reactive",
        threshold=1,
        within=0,
        parameters=parameters,
    )
