"""Small typed records the store takes and returns (besides score rows and DataFrames)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np

from pipeline.errors import ConfigError, InvalidRowError
from pipeline.log.lag import Status
from pipeline.store.rows import check_time


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """What ``score_history`` keeps: **one point per user per event-time interval**, the
    user's newest score whose ``features_time`` falls in that interval.

    Intervals are UTC-epoch aligned: ``[k * interval_s, (k + 1) * interval_s)`` (the
    default, one day, gives each user a daily risk line). A point is identified by
    ``(user_id, bucket)`` (the interval's start) and replaced only by a score with a newer
    or equal ``features_time`` in the same interval (writes append columnar segments and
    readers resolve them by this rule: ``pipeline.store.segments``). The points therefore
    depend on the scores alone, not on how the writer grouped them into transactions nor
    on crashes: a replay after a SIGKILL reads back as the same points, and a killed run
    ends with exactly the points of an uninterrupted one (``tests/stream/test_processes.py``).

    >>> HistoryPolicy(3600).bucket_us(np.array(["2026-01-01T10:59:59"], "datetime64[us]"))
    array(['2026-01-01T10:00:00.000000'], dtype='datetime64[us]')
    """

    interval_s: float = 86_400.0

    def __post_init__(self) -> None:
        ok = isinstance(self.interval_s, numbers.Real) and not isinstance(self.interval_s, bool)
        if not (ok and math.isfinite(self.interval_s) and self.interval_s >= 0.001):
            raise ConfigError(
                f"HistoryPolicy.interval_s={self.interval_s!r}: use seconds >= 0.001 (e.g. "
                "86400 for one point per user per day), or history=None for no history"
            )

    def bucket_us(self, times_us: np.ndarray) -> np.ndarray:
        """``datetime64[us]`` times -> the start of their interval (``datetime64[us]``)."""
        step = int(round(self.interval_s * 1e6))
        t = times_us.astype("datetime64[us]").view("int64")
        return (t - t % step).view("datetime64[us]")


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``upsert_scores`` call did."""

    scores: int  # rows written (after de-duplication, without stale rows)
    history: int  # history points written (each (user, interval) once; a replay writes them again)
    stale: int  # rows skipped: the store already holds newer features for the user
    duplicates: int  # rows dropped because the batch held the same user more than once


@dataclass(frozen=True, slots=True)
class StreamMetric:
    """One metrics tick of one partition handled by one worker.

    ``events`` and ``dead_letters`` count since the worker's previous tick (the
    dashboard sums them; their ratio is the dead-letter share). Latencies are of whole
    micro-batches (fetch to commit), milliseconds.
    """

    time: datetime
    worker: str
    partition: int
    committed_offset: int | None = None
    log_end_offset: int | None = None
    lag: int | None = None
    lag_seconds: float | None = None
    status: str | None = None
    events: int | None = None
    events_per_s: float | None = None
    batch_p50_ms: float | None = None
    batch_p95_ms: float | None = None
    batch_p99_ms: float | None = None
    dead_letters: int | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", check_time(self.time, "metric time"))
        if not (isinstance(self.worker, str) and self.worker):
            raise InvalidRowError(f"metric worker {self.worker!r}: use a non-empty worker id")
        p = self.partition
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
            raise InvalidRowError(f"metric partition {p!r}: use an int >= 0")
        object.__setattr__(self, "partition", int(p))
        if self.status is not None and self.status not in Status.__members__:
            raise InvalidRowError(
                f"metric status {self.status!r}: use one of {', '.join(Status.__members__)} or None"
            )
        for f in fields(self)[3:]:
            v = getattr(self, f.name)
            if f.name in ("status", "model_version") or v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise InvalidRowError(
                    f"metric {f.name}={v!r} (worker {self.worker}, partition {self.partition}): "
                    "use a finite number or None"
                )
            if f.name in ("committed_offset", "log_end_offset", "lag", "events", "dead_letters"):
                if int(v) != v or v < 0:
                    raise InvalidRowError(f"metric {f.name}={v!r}: use an int >= 0 or None")
                object.__setattr__(self, f.name, int(v))
            else:
                object.__setattr__(self, f.name, float(v))

    def values(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """Headline figures over the current scores (the dashboard's KPI tiles)."""

    users: int  # active subscribers with a score
    high_risk_users: int  # risk >= the threshold asked for
    mean_risk: float | None
    expected_monthly_loss: float  # sum of risk x monthly revenue (revenue at risk)
    high_risk_monthly_revenue: float  # monthly revenue of the high-risk users
    features_time: datetime | None  # newest event time scored
    model_versions: tuple[str, ...]
    churned_users: int = 0  # users whose row says they cancelled (not counted above)
