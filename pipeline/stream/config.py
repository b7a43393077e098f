"""The stream's settings (one frozen object) and where its files live.

Every field can come from :class:`pipeline.config.Settings` once it grows a
``stream_<field>`` attribute (env ``CHURN_STREAM_<FIELD>``); until then the defaults here
apply and the CLI / flow pass overrides. Validation happens at construction and names
the bad value and the remedy.

>>> cfg = StreamConfig(batch_size=500)
>>> cfg.batch_size, cfg.group
(500, 'churn-stream')
>>> StreamPaths(Path("/tmp/d"), "g").checkpoint(3)
PosixPath('/tmp/d/stream/g/checkpoints/partition-3.ckpt')
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pipeline.autoscale.policy import PolicyConfig
from pipeline.errors import ConfigError
from pipeline.highrisk import DEFAULT_TEXT as DEFAULT_HIGH_RISK
from pipeline.highrisk import HighRiskRule

DEFAULT_GROUP = "churn-stream"  # the same default as `churn lag --group`
CAUGHT_UP_CHAMPION_WAIT_S = 60.0  # --until-caught-up without --champion-wait: no champion after this is an error


def default_max_workers() -> int:
    """Up to 4, but no more workers than cores: scoring is CPU-bound, so more processes
    than cores only add contention (measured on 2 cores: 2 workers 1.3x of one)."""
    return max(1, min(4, os.cpu_count() or 1))


_GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class StreamConfig:
    group: str = DEFAULT_GROUP
    # micro-batches (Kafka: max.poll.records / fetch.max.wait.ms)
    batch_size: int = 1_000
    max_wait_s: float = 0.1  # a partial batch waits at most this long for more records
    max_batch_bytes: int = 8 << 20
    idle_sleep_max_s: float = 0.2  # longest sleep of an idle worker between polls
    max_events_per_s: float | None = None  # per worker; e.g. replay a long history gently
    # features (must match the lateness the champion was trained with)
    lateness_hours: float = 24.0
    # admission (pipeline.stream.admission): events dated more than this ahead of the clock
    # are dead-lettered as future; event ids are deduplicated over the last dedup_window to
    # 2 x dedup_window events of each partition (saved in its checkpoint)
    max_future_skew_hours: float = 24.0
    dedup_window: int = 50_000
    # exactly-once: state + offsets are checkpointed together this often (and on
    # handover / shutdown / when caught up); scores are flushed at least this often
    checkpoint_interval_s: float = 5.0
    flush_interval_s: float = 2.0
    max_pending_rows: int = 500_000  # score rows buffered before the worker waits
    # rows per store transaction: a flush is one transaction up to this. Each transaction
    # rewrites most pages of the scores B-tree (a flush's users are spread over it) and
    # splits a flush's users across transactions (a user in two is written twice), so
    # one transaction per flush is cheapest (issue 17, bench_stream, 1M events: 20k ->
    # 250k took 101k -> 127k events/CPU-s at batches of 1,000, 129k -> 177k at 10,000)
    max_write_rows: int = 250_000
    # score_history: one point per user per this much event time (its newest score);
    # 0: no history (pipeline.store.HistoryPolicy)
    history_interval_s: float = 86_400.0
    # scoring
    # who is "high risk" (reasons are stored for them): a pipeline.highrisk rule in text form,
    # default 3x the champion's training base rate; alert_threshold t is absolute:t (kept)
    high_risk: str | None = None
    alert_threshold: float | None = None
    reasons_top_k: int = 3
    reasons_method: Literal["approx", "exact"] = "approx"
    predict_threads: int = 1
    # observability and control
    metrics_interval_s: float = 5.0
    heartbeat_interval_s: float = 1.0
    model_check_s: float = 1.0  # workers look for a new champion export this often
    model_poll_s: float = 10.0  # the supervisor polls the registry this often
    # how long the supervisor waits for a first champion; None: until stopped, except with
    # --until-caught-up (a run meant to end): CAUGHT_UP_CHAMPION_WAIT_S
    champion_wait_s: float | None = None
    worker_timeout_s: float = 60.0  # a worker silent this long is killed and restarted
    drain_timeout_s: float = 20.0  # a stopping worker gets this long to checkpoint
    # A run that ends on its own (caught up, out of time) waits this long for the drift
    # check in flight (Evidently's first import ~4 s, a report ~4 s); a stop signal, or
    # the end of this wait, ends it unfinished (stored as a skipped check, with why).
    drift_finish_s: float = 60.0
    # consumer group size and autoscaling (pipeline.autoscale)
    workers: int = 1
    min_workers: int = 1
    max_workers: int = field(default_factory=default_max_workers)
    autoscale: bool = True
    autoscale_interval_s: float = 15.0
    lag_threshold: int = 10_000
    scale_down_stabilization_s: float = 300.0
    cooldown_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not _GROUP_RE.match(self.group):
            raise ConfigError(
                f"stream group {self.group!r}: use 1-100 characters from [A-Za-z0-9._-], "
                "not starting with '.' or '-'"
            )
        positive = ("batch_size", "max_batch_bytes", "max_pending_rows", "max_write_rows",
                    "reasons_top_k", "predict_threads", "lag_threshold", "dedup_window")  # fmt: skip
        bad = [f"{k}={getattr(self, k)!r} (an int >= 1)" for k in positive
               if not (isinstance(getattr(self, k), int) and getattr(self, k) >= 1)]  # fmt: skip
        non_negative = ("max_wait_s", "checkpoint_interval_s", "flush_interval_s", "cooldown_s",
                        "scale_down_stabilization_s", "lateness_hours", "max_future_skew_hours", "history_interval_s",
                        "drift_finish_s")  # fmt: skip
        bad += [f"{k}={getattr(self, k)!r} (seconds >= 0)" for k in non_negative
                if not getattr(self, k) >= 0]  # fmt: skip
        if self.champion_wait_s is not None and not self.champion_wait_s >= 0:
            bad.append(f"champion_wait_s={self.champion_wait_s!r} (seconds >= 0, or None: wait until stopped)")
        timed = (
            "idle_sleep_max_s",
            "metrics_interval_s",
            "heartbeat_interval_s",
            "model_check_s",
            "model_poll_s",
            "worker_timeout_s",
            "drain_timeout_s",
            "autoscale_interval_s",
        )
        bad += [
            f"{k}={getattr(self, k)!r} (seconds > 0)" for k in timed if not getattr(self, k) > 0
        ]
        if self.max_events_per_s is not None and not self.max_events_per_s > 0:
            bad.append(
                f"max_events_per_s={self.max_events_per_s!r} (events/s > 0, or None for no limit)"
            )
        if self.alert_threshold is not None and not 0.0 < self.alert_threshold <= 1.0:
            bad.append(f"alert_threshold={self.alert_threshold!r} (a risk in (0, 1])")
        elif self.alert_threshold is not None and self.high_risk is not None:
            bad.append(f"high_risk={self.high_risk!r} and alert_threshold={self.alert_threshold!r} (give one: "
                       f"alert_threshold t is the same as high_risk 'absolute:t')")
        else:
            try:
                self.high_risk_rule  # noqa: B018 - validates the rule's text
            except ConfigError as exc:
                bad.append(f"high_risk: {exc}")
        if self.reasons_method not in ("approx", "exact"):
            bad.append(f"reasons_method={self.reasons_method!r} ('approx' or 'exact')")
        if not (1 <= self.min_workers <= self.workers <= self.max_workers):
            bad.append(
                f"workers={self.workers}, min_workers={self.min_workers}, max_workers="
                f"{self.max_workers} (need 1 <= min <= workers <= max)"
            )
        if bad:
            raise ConfigError(f"invalid stream setting(s): {'; '.join(bad)}")

    @property
    def high_risk_rule(self) -> HighRiskRule:
        """Who is high risk (:mod:`pipeline.highrisk`): ``high_risk``, else ``absolute:<alert_threshold>``,
        else the default (3x the champion's training base rate)."""
        if self.high_risk is not None:
            return HighRiskRule.parse(self.high_risk)
        if self.alert_threshold is not None:
            return HighRiskRule.absolute(self.alert_threshold)
        return HighRiskRule.parse(DEFAULT_HIGH_RISK)

    @property
    def lateness(self) -> timedelta:
        return timedelta(hours=self.lateness_hours)

    @property
    def max_future_skew(self) -> timedelta:
        return timedelta(hours=self.max_future_skew_hours)

    def replace(self, **changes: Any) -> StreamConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> StreamConfig:
        """Defaults, then ``settings.stream_<field>`` where present, then ``overrides``
        (``None`` values are ignored, so CLI options can be passed through as they are)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            v = getattr(settings, f"stream_{f.name}", None)
            if v is not None:
                values[f.name] = v
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        if "alert_threshold" in given and "high_risk" not in given:  # the explicit option wins
            values.pop("high_risk", None)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown stream setting(s) {unknown}")
        # Sizes given on their own stretch the others' defaults (`--workers 6` alone is fine).
        lo, n = values.get("min_workers", cls.min_workers), values.get("workers", cls.workers)
        if "workers" not in given and "min_workers" in given:
            values["workers"] = n = max(n, lo)
        if "max_workers" not in given:
            values["max_workers"] = max(values.get("max_workers", default_max_workers()), n)
        return cls(**values)

    def policy(self) -> PolicyConfig:
        """The autoscaler settings these stream settings imply: the one mapping used by the
        local supervisor and by the Kubernetes/KEDA manifest generator (pipeline.deploy.k8s),
        so the two cannot drift apart."""
        return PolicyConfig(
            lag_threshold=self.lag_threshold,
            min_consumers=self.min_workers,
            max_consumers=self.max_workers,
            scale_down_stabilization_s=self.scale_down_stabilization_s,
            cooldown_s=self.cooldown_s,
        )

    def clamp_workers(self, partitions: int) -> StreamConfig:
        """Never more consumers than partitions (Kafka would leave the rest idle)."""
        hi = max(1, min(self.max_workers, partitions))
        lo = min(self.min_workers, hi)
        return dataclasses.replace(
            self, max_workers=hi, min_workers=lo, workers=min(max(self.workers, lo), hi)
        )


@dataclass(frozen=True)
class StreamPaths:
    """Files of one consumer group under ``<data_dir>/stream/<group>/``."""

    data_dir: Path
    group: str

    @property
    def root(self) -> Path:
        return self.data_dir / "stream" / self.group

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, partition: int) -> Path:
        return self.checkpoints / f"partition-{partition}.ckpt"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def champion(self) -> Path:
        """The pointer file the supervisor writes and the workers follow."""
        return self.root / "champion.json"

    @property
    def workers(self) -> Path:
        return self.root / "workers"

    @property
    def supervisor_lock(self) -> Path:
        return self.root / "supervisor.lock"
