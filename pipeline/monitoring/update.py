"""The realised-performance job: compute the matured scoring days not yet stored, store
them, and log them to the MLflow run of the model version that produced the scores.

Where it runs, and why not in the stream: ``flows/realised.py`` runs it as a scheduled
Prefect flow (daily; also on demand). A scoring day matures once, ``horizon`` days after
it, so the work is one join per day -- nothing a stream worker must do per batch. It
needs the whole lifecycle of every partition (the drift leader owns one partition's
users), the whole score history of the store, and MLflow (which stream workers never
import: ~2 s and ~150 MB each). As a flow it is retried, visible and re-runnable after an
outage: it always computes every matured day missing from the store, so a day skipped
while it was down is filled in on the next run.

>>> from pipeline.store import Store
>>> from pipeline.log import MemoryLog
>>> from pipeline.clock import FakeClock
>>> r = update_realised(Store("sqlite://"), MemoryLog(num_partitions=1), 30, FakeClock())
>>> r.note
'no scores stored yet: run the stream first'
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pipeline.clock import Clock
from pipeline.features.timebase import DAY_US
from pipeline.monitoring.lifecycle import Lifecycle, read_lifecycle
from pipeline.monitoring.realised import METRICS, history_frame, matured_days, realised_performance

log = logging.getLogger(__name__)


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


@dataclass(frozen=True)
class RealisedUpdate:
    rows: pd.DataFrame  # the rows computed and stored by this run
    end_us: int | None  # newest event time: days up to end - horizon have matured
    note: str  # what happened, in one line (also when nothing matured yet)


def not_matured_note(first_us: int, horizon_days: int) -> str:
    first = -(-int(first_us) // DAY_US) * DAY_US
    return (f"labels mature after the horizon ({horizon_days} days): the first scoring day "
            f"{_dt(first).date()} matures on {_dt(first + horizon_days * DAY_US).date()} (event time)")


def update_realised(store: Any, log_: Any, horizon_days: int, clock: Clock, *, n_boot: int = 200, seed: int = 0,
                    lifecycle: Lifecycle | None = None, recompute: bool = False) -> RealisedUpdate:
    """Compute, store and return the matured days missing from the store (all matured
    days with ``recompute``). ``lifecycle`` defaults to reading it from ``log_``."""
    if horizon_days < 1:
        raise ValueError(f"horizon_days={horizon_days!r}: use the champion's label horizon in days (>= 1)")
    hist = store.score_history()
    if hist.empty:
        return RealisedUpdate(pd.DataFrame(), None, "no scores stored yet: run the stream first")
    history = history_frame(hist)
    lc = lifecycle if lifecycle is not None else read_lifecycle(log_)
    if lc.end_us is None:
        return RealisedUpdate(pd.DataFrame(), None, "the event log is empty: nothing can have matured")
    days = matured_days(int(history["time_us"].min()), lc.end_us, horizon_days)
    if not days:
        return RealisedUpdate(pd.DataFrame(), lc.end_us, not_matured_note(int(history["time_us"].min()), horizon_days))
    if not recompute:
        have = store.realised_performance()
        done = set() if have.empty else {int(pd.Timestamp(d).value // 1_000) for d in have["day"]}
        days = [d for d in days if d not in done]
    rows = realised_performance(history, lc, days, horizon_days, n_boot=n_boot, seed=seed)
    if not rows.empty:
        store.record_realised(rows, matured_at=_dt(lc.end_us), computed_at=clock.now())
    span = f"{_dt(days[0]).date()}..{_dt(days[-1]).date()}" if days else "none new"
    note = f"{len(days)} scoring day(s) matured and computed ({span}), {len(rows)} row(s) stored"
    log.info("realised performance: %s", note)
    return RealisedUpdate(rows, lc.end_us, note)


def log_to_mlflow(rows: pd.DataFrame, client: Any = None, model_name: str | None = None) -> dict[str, int]:
    """Log each row's metrics to the MLflow run of its model version: ``realised_<metric>``
    (and ``_low``/``_high``, ``realised_n``, ``realised_base_rate``) with ``step`` = the
    scoring day (days since 1970-01-01) and that day's timestamp. Returns metrics logged per
    version; a version the registry does not know is skipped with a warning."""
    if rows is None or rows.empty:
        return {}
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    from pipeline import registry

    client = client or MlflowClient()
    name = model_name or registry.MODEL_NAME
    out: dict[str, int] = {}
    for version, part in rows.groupby(rows["model_version"].astype(str)):
        try:
            run_id = client.get_model_version(name, version).run_id
        except MlflowException as exc:
            log.warning("realised performance of v%s not logged to MLflow: %s", version, exc)
            continue
        metrics = []
        for r in part.to_dict("records"):
            day = pd.Timestamp(r["day"])
            step, ts = int(day.value // (DAY_US * 1_000)), int(day.value // 1_000_000)
            values = {"realised_n": r["n"], "realised_positives": r["positives"]}
            for m in ("base_rate", *METRICS):
                for suffix in ("", "_low", "_high"):
                    values[f"realised_{m}{suffix}"] = r.get(f"{m}{suffix}")
            metrics += [Metric(k, float(v), ts, step) for k, v in values.items()
                        if v is not None and not math.isnan(float(v))]
        for i in range(0, len(metrics), 1_000):  # MLflow's batch limit
            client.log_batch(run_id, metrics=metrics[i:i + 1_000])
        out[version] = len(metrics)
    return out
