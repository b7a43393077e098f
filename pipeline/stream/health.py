"""The stream's alert level (Healthy / Warning / Critical), from the log or from the store.

:func:`alert_from_store` is what the dashboard calls: everything it needs is in the
store already (the newest metrics tick per partition, recent dead letters, live
workers), so it needs no access to the log. The supervisor uses :func:`alert_from_log`
(the group's committed offsets, as ``churn lag`` shows them).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline.autoscale.alerts import Alert, AlertThresholds, assess, assess_partitions
from pipeline.clock import Clock
from pipeline.log.base import PartitionLog
from pipeline.log.lag import Status, describe_group

WINDOW = timedelta(minutes=5)  # dead-letter share over this much recent metrics


def _recent_dead_letters(store: Any, since: Any) -> tuple[int, int]:
    df = store.metrics_since(since)
    if df.empty:
        return 0, 0
    return int(df["dead_letters"].fillna(0).sum()), int(df["events"].fillna(0).sum())


def alert_from_log(
    log: PartitionLog, group: str, clock: Clock, store: Any | None = None, consumers: int | None = None,
    thresholds: AlertThresholds | None = None,
) -> Alert:  # fmt: skip
    dead, events = (0, 0) if store is None else _recent_dead_letters(store, clock.now() - WINDOW)
    return assess_partitions(describe_group(log, group, clock), dead_letters=dead, events=events,
                             consumers=consumers, thresholds=thresholds)  # fmt: skip


def alert_from_store(
    store: Any, thresholds: AlertThresholds | None = None, heartbeat_s: float = 30.0
) -> Alert:
    """The banner from the newest metrics tick of every partition (dashboard side)."""
    latest = store.latest_metrics()
    if latest.empty:
        return Alert(assess(total_lag=0, lag_seconds=None).level, ("no stream metrics yet",))
    latest = latest.sort_values("time").drop_duplicates("partition", keep="last")
    seconds = latest["lag_seconds"].dropna()
    statuses = {int(r.partition): Status(r.status) for r in latest.itertuples() if r.status}
    dead, events = _recent_dead_letters(store, latest["time"].max().to_pydatetime() - WINDOW)
    workers = store.assignments()
    live = int((workers["heartbeat_age_s"] <= heartbeat_s).sum()) if not workers.empty else 0
    return assess(
        total_lag=int(latest["lag"].fillna(0).sum()),
        lag_seconds=float(seconds.max()) if len(seconds) else None,
        statuses=statuses, dead_letters=dead, events=events, consumers=live, thresholds=thresholds,
    )  # fmt: skip
