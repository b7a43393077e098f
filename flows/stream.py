"""The `stream` flow: supervise the scoring workers of one consumer group.

Thin wiring of :class:`pipeline.stream.supervisor.Supervisor` (all logic lives there):
wait for a champion in the registry, start the worker processes, follow the champion
alias, autoscale on lag, and drain (checkpoint, exit) when stopped. Runs until it is
cancelled, unless ``max_seconds`` or ``until_caught_up`` bound it.

Run it directly (``churn stream``; Prefect starts a temporary API server in-process) or
as a served deployment (see :mod:`flows.serve`)::

    PREFECT_API_URL=http://127.0.0.1:4200/api prefect deployment run 'stream/live'
    PREFECT_API_URL=http://127.0.0.1:4200/api prefect deployment run 'stream/catch-up'
    prefect flow-run cancel <id>      # drains: every worker checkpoints, then exits

Cancelling the run, Ctrl-C and SIGTERM all end in the supervisor's drain.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.env import quiet_environment

TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
LIVE_DEPLOYMENT = "live"
# `churn stream` runs this flow in its own process: its Ctrl-C / SIGTERM handler sets STOP
# while a supervisor runs (SUPERVISING), and the supervisor drains and returns, so the run
# ends "stopped" with its summary. (A KeyboardInterrupt through Prefect's engine made it
# log "Crash detected!" four times and record the run as Crashed.)
# Prefect's flow engine replaces the process's SIGTERM handler with its own (it records a
# crash, or a cancellation a runner asked for); `churn stream` sets ON_SIGTERM, and its
# handler is put back while the supervisor runs. Served deployments leave it None: there
# SIGTERM is how Prefect's runner cancels a run.
STOP = threading.Event()
SUPERVISING = threading.Event()
ON_SIGTERM: Any = None
CATCH_UP_DEPLOYMENT = "catch-up"


def _logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:  # called through .fn() outside a run
        return logging.getLogger("flows.stream")


@task(name="supervise", **TASK)
def supervise(data_dir: str, topic: str, store_url: str, tracking_uri: str, config: dict[str, Any],
              max_seconds: float | None, until_caught_up: bool,
              log_config: dict[str, Any] | None = None,
              drift: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    from pathlib import Path

    from pipeline.stream.champion import RegistryChampion
    from pipeline.stream.config import StreamConfig
    from pipeline.stream.supervisor import Supervisor

    logger = _logger()
    sup = Supervisor(Path(data_dir), topic, store_url, RegistryChampion(tracking_uri), StreamConfig(**config),
                     logger=logger, log_config=log_config, drift=drift)  # fmt: skip
    logger.info("stream: group %s on topic %s (%d partitions), store %s, registry %s", sup.cfg.group, topic,
                sup.log.num_partitions, sup.store.url, tracking_uri)  # fmt: skip
    prefects = None
    if ON_SIGTERM is not None and threading.current_thread() is threading.main_thread():
        prefects = signal.signal(signal.SIGTERM, ON_SIGTERM)
    SUPERVISING.set()
    try:
        return sup.run(should_stop=STOP.is_set, max_seconds=max_seconds, until_caught_up=until_caught_up)
    finally:
        SUPERVISING.clear()
        if prefects is not None:
            signal.signal(signal.SIGTERM, prefects)


@flow(
    name="stream",
    description="Score subscribers in real time: a supervised consumer group of scoring "
    "workers (champion model, checkpointed features, exactly-once effect) that scales on lag.",
)
def stream(
    data_dir: str | None = None,
    topic: str | None = None,
    group: str | None = None,
    workers: int | None = None,
    min_workers: int | None = None,
    max_workers: int | None = None,
    autoscale: bool | None = None,
    batch_size: int | None = None,
    max_wait_s: float | None = None,
    checkpoint_interval_s: float | None = None,
    flush_interval_s: float | None = None,
    high_risk: str | None = None,
    alert_threshold: float | None = None,
    reasons: Literal["approx", "exact"] | None = None,
    lag_threshold: int | None = None,
    max_seconds: float | None = None,
    until_caught_up: bool = False,
    tracking_uri: str | None = None,
    store_url: str | None = None,
    drift: bool | None = None,
    champion_wait_s: float | None = None,
) -> dict[str, Any]:
    """``high_risk``: who gets reasons, a :mod:`pipeline.highrisk` rule (default
    ``CHURN_STREAM_HIGH_RISK``, else 3x the champion's training base rate; ``alert_threshold``
    t is ``absolute:t``). ``drift``: run drift checks (default: ``CHURN_DRIFT_ENABLED``, true; other
    ``CHURN_DRIFT_*`` settings configure them, see docs/drift.md).
    Returns a JSON-able summary: events, committed offsets, lag, model version, restarts."""
    quiet_environment()  # also: ChurnErrors are one line in the run log (flows.logs)
    from dataclasses import asdict

    from flows.retrain import REQUESTER
    from pipeline.config import load_settings
    from pipeline.drift.config import DriftConfig
    from pipeline.log.kafka_config import log_config
    from pipeline.stream.config import StreamConfig

    s = load_settings(data_dir=data_dir, topic=topic)
    cfg = StreamConfig.from_settings(
        s, group=group, workers=workers, min_workers=min_workers, max_workers=max_workers, autoscale=autoscale,
        batch_size=batch_size, max_wait_s=max_wait_s, checkpoint_interval_s=checkpoint_interval_s,
        flush_interval_s=flush_interval_s, high_risk=high_risk, alert_threshold=alert_threshold, reasons_method=reasons,
        lag_threshold=lag_threshold, champion_wait_s=champion_wait_s,
    )  # fmt: skip
    return supervise(str(s.data_dir.resolve()), s.topic, store_url or s.resolved_store_url,
                     tracking_uri or s.resolved_mlflow_uri, asdict(cfg), max_seconds, until_caught_up,
                     log_config(s), asdict(DriftConfig.from_settings(s, enabled=drift, retrain_requester=getattr(s, "drift_retrain_requester", None) or REQUESTER)))  # fmt: skip


def deployments(data_dir: str | None = None) -> list[Any]:
    """``stream/live`` (runs until cancelled, autoscaling) and ``stream/catch-up`` (stops once
    every partition is caught up), both one run at a time (they share the consumer group)."""
    base = {"data_dir": data_dir} if data_dir else {}
    common = {"concurrency_limit": 1, "tags": ["churn", "stream"]}
    return [
        stream.to_deployment(
            name=LIVE_DEPLOYMENT,
            parameters=base,
            description="Score the event stream until cancelled (cancel = drain and checkpoint).",
            **common,
        ),  # fmt: skip
        stream.to_deployment(
            name=CATCH_UP_DEPLOYMENT,
            parameters=base | {"until_caught_up": True},
            description="Score everything in the log, then stop.",
            **common,
        ),  # fmt: skip
    ]
