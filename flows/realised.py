"""``realised`` flow: the champion's realised performance as labels mature (issue 18).

A scheduled Prefect flow rather than work in the stream's drift leader, because
(details in :mod:`pipeline.monitoring.update`): a scoring day matures once, ``horizon``
days after it -- one join per day, nothing per micro-batch; it needs every partition's
cancels and the whole score history (the leader owns one partition); it logs to MLflow,
which stream workers never import; and as a flow it is retried, visible in the Prefect
UI and catches up by itself after an outage (every matured day missing from the store is
computed on the next run).

Deployment ``realised/daily`` (:func:`deployment`, served by ``flows.serve``) runs at
00:30 UTC; run it by hand with ``prefect deployment run 'realised/daily'`` or call
``realised()`` directly.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger, task

from flows.retries import transient
from pipeline.config import load_settings

DEPLOYMENT = "daily"
CRON = "30 0 * * *"
DEFAULT_HORIZON_DAYS = 30


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run (flow.fn() in tests)
        return logging.getLogger(__name__)


@task(name="champion-horizon", retries=2, retry_delay_seconds=5, retry_condition_fn=transient)
def champion_horizon(tracking_uri: str) -> int:
    """The label horizon the champion was trained for (its ``horizon_days`` tag)."""
    from pipeline import registry

    registry.configure(tracking_uri)
    mv = registry.champion_version()
    try:
        return int((mv.tags or {}).get("horizon_days", DEFAULT_HORIZON_DAYS)) if mv is not None else DEFAULT_HORIZON_DAYS
    except ValueError:
        return DEFAULT_HORIZON_DAYS


@task(name="compute-realised", retries=1, retry_delay_seconds=10, retry_condition_fn=transient)
def compute(data_dir: str, topic: str, store_url: str, horizon_days: int, n_boot: int, recompute: bool):
    from pathlib import Path

    from pipeline.clock import SystemClock
    from pipeline.log.kafka import open_configured_log
    from pipeline.monitoring.update import update_realised
    from pipeline.store import Store

    settings = load_settings(data_dir=Path(data_dir), topic=topic)
    log = open_configured_log(settings, topic, create=False)
    store = Store(store_url)
    try:
        return update_realised(store, log, horizon_days, SystemClock(), n_boot=n_boot, recompute=recompute)
    finally:
        store.close()
        log.close()


@task(name="log-realised-to-mlflow", retries=2, retry_delay_seconds=5, retry_condition_fn=transient)
def log_mlflow(rows, tracking_uri: str) -> dict[str, int]:
    from pipeline import registry
    from pipeline.monitoring.update import log_to_mlflow

    registry.configure(tracking_uri)
    return log_to_mlflow(rows)


@flow(name="realised", description="Realised performance of the published scores once labels matured: "
      "per scoring day, ROC-AUC / PR-AUC / lift@10% / ECE / base rate with intervals; stored and logged to MLflow.")
def realised(data_dir: str | None = None, topic: str | None = None, horizon_days: int | None = None,
             n_boot: int = 200, recompute: bool = False, tracking_uri: str | None = None) -> dict[str, Any]:
    s = load_settings(data_dir=data_dir, topic=topic)
    uri = tracking_uri or s.resolved_mlflow_uri
    horizon = horizon_days or champion_horizon(uri)
    upd = compute(str(s.data_dir), s.topic, s.resolved_store_url, horizon, n_boot, recompute)
    logged = log_mlflow(upd.rows, uri) if len(upd.rows) else {}
    _logger().info("realised performance (horizon %d days): %s; MLflow metrics per version %s", horizon, upd.note,
                   logged)
    return {"horizon_days": horizon, "note": upd.note, "rows": int(len(upd.rows)), "mlflow_metrics": logged,
            "matured_until": None if upd.end_us is None else int(upd.end_us)}


def deployment(data_dir: str | None = None) -> Any:
    from prefect.schedules import Cron

    return realised.to_deployment(
        name=DEPLOYMENT, schedules=[Cron(CRON, timezone="UTC")], concurrency_limit=1,
        parameters={"data_dir": data_dir} if data_dir else {}, tags=["churn", "monitoring"],
        description="Daily: realised performance of the matured scoring days.",
    )
