"""How many consumers the group should run: KEDA's Kafka scaler + the HPA's behavior.

**Recommendation** (KEDA ``kafka`` trigger, ``metricType: AverageValue``):

* lag per consumer target ``lag_threshold``: desired = ceil(total lag / lag_threshold);
* the group is *active* only while total lag > ``activation_lag_threshold``; inactive, the
  recommendation is ``min_consumers`` (0 is allowed: scale to zero); active, at least 1;
* never more consumers than partitions (``allow_idle_consumers=False``, the default), or
  than partitions with lag (``limit_to_partitions_with_lag``); KEDA does this by capping
  the lag metric at ``partitions x lag_threshold``, and so do we;
* the HPA's tolerance: no change while total lag / (current x lag_threshold) is within
  ``1 +- tolerance``;
* clamped to ``[min_consumers, max_consumers]`` (min itself capped by the partition cap).

**Behavior** (HPA ``behavior``): recommendations are kept for the stabilization windows;
the count moves up to the *lowest* recommendation of the scale-up window (default 0 s:
at once) and down only to the *highest* of the scale-down window (default 300 s), so a
scale-down happens only after a whole window in which every recommendation was lower.
Beyond the HPA: a fresh policy waits one full scale-down window of observations before
its first scale-down (a restarted supervisor does not shrink the group on one sample);
``scale_down_max_step`` limits one scale-down (the HPA's ``Pods`` policy); and
``cooldown_s`` holds any change that soon after the previous one (a change rebalances
partitions and the lag needs time to show its effect) -- except to bring the count back
within bounds or to activate from zero.

Time is injected (``now``); the same inputs give the same decisions and reasons.

>>> from datetime import UTC, datetime
>>> p = AutoscalePolicy(PolicyConfig(lag_threshold=10_000, max_consumers=8))
>>> d = p.decide(datetime(2026, 1, 1, tzinfo=UTC), current=1, lags={0: 30_000, 1: 22_000, 2: 0, 3: 0})
>>> d.desired, d.action.value
(4, 'scale_up')
>>> d.reason
'scale up 1 -> 4: lag 52,000 / 10,000 per consumer -> 6, capped at 4 partitions'
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pipeline.errors import AutoscaleError, ConfigError


class Action(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    lag_threshold: int = 10_000  # target lag per consumer (KEDA lagThreshold)
    activation_lag_threshold: int = 0  # inactive at or below this total lag
    min_consumers: int = 1  # 0 allows scaling to zero when inactive
    max_consumers: int = 4
    allow_idle_consumers: bool = False  # allow more consumers than partitions
    limit_to_partitions_with_lag: bool = False  # cap at partitions that have lag
    tolerance: float = 0.1  # HPA: ignore lag/target ratios within 1 +- tolerance
    scale_up_stabilization_s: float = 0.0  # HPA default: scale up at once
    scale_down_stabilization_s: float = 300.0  # HPA default
    scale_down_max_step: int | None = None  # at most this many fewer per scale-down
    cooldown_s: float = 30.0  # minimum time between two changes

    def __post_init__(self) -> None:
        checks = {
            "lag_threshold": self.lag_threshold >= 1,
            "activation_lag_threshold": self.activation_lag_threshold >= 0,
            "min_consumers": self.min_consumers >= 0,
            "max_consumers": self.max_consumers >= max(1, self.min_consumers),
            "tolerance": 0 <= self.tolerance < 1,
            "scale_up_stabilization_s": 0 <= self.scale_up_stabilization_s <= 3600,
            "scale_down_stabilization_s": 0 <= self.scale_down_stabilization_s <= 3600,
            "scale_down_max_step": self.scale_down_max_step is None
            or self.scale_down_max_step >= 1,
            "cooldown_s": 0 <= self.cooldown_s <= 3600,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"invalid autoscaler setting(s) {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}: "
                "lag_threshold >= 1, activation_lag_threshold >= 0, 0 <= min_consumers <= "
                "max_consumers and max_consumers >= 1, 0 <= tolerance < 1, windows and cooldown "
                "in [0, 3600] s, scale_down_max_step >= 1 or None"
            )
        if self.allow_idle_consumers and self.limit_to_partitions_with_lag:
            raise ConfigError(
                "allow_idle_consumers and limit_to_partitions_with_lag contradict each other "
                "(as in KEDA): set at most one"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    time: datetime
    current: int
    desired: int
    recommended: int  # this tick's recommendation, before stabilization and cooldown
    action: Action
    reason: str
    total_lag: int
    partitions: int
    partitions_with_lag: int

    def as_record(self) -> dict[str, object]:
        """Keyword arguments for ``Store.record_decision``."""
        return {
            "time": self.time, "current": self.current, "desired": self.desired,
            "action": self.action.value, "reason": self.reason,
            "recommended": self.recommended, "total_lag": self.total_lag,
        }  # fmt: skip


def bounds(config: PolicyConfig, partitions: int) -> tuple[int, int]:
    """(lowest, highest) consumer count allowed for a topic of ``partitions``."""
    high = (
        config.max_consumers
        if config.allow_idle_consumers
        else min(config.max_consumers, partitions)
    )
    return min(config.min_consumers, high), high


def recommend(config: PolicyConfig, current: int, lags: Mapping[int, int]) -> tuple[int, str]:
    """This tick's recommendation (KEDA + HPA tolerance, within bounds) and why."""
    total = sum(lags.values())
    with_lag = sum(1 for v in lags.values() if v > 0)
    low, high = bounds(config, len(lags))
    thr = config.lag_threshold
    if total <= config.activation_lag_threshold:
        return low, f"lag {total:,} <= activation {config.activation_lag_threshold:,} -> min {low}"
    metric, what = total, ""
    if not config.allow_idle_consumers:  # KEDA caps the lag metric itself
        limit = config.limit_to_partitions_with_lag
        upper = with_lag if limit else len(lags)
        if total > upper * thr:
            metric, what = upper * thr, f"{upper} partitions{' with lag' if limit else ''}"
    raw = math.ceil(total / thr)
    want = math.ceil(metric / thr)
    why = f"lag {total:,} / {thr:,} per consumer -> {raw}"
    if current > 0 and want != current and abs(metric / (current * thr) - 1) <= config.tolerance:
        return (
            current,
            f"{why}; within {config.tolerance:.0%} of {current} x {thr:,}: keep {current}",
        )
    if want > high:
        return high, f"{why}, capped at max {high}"
    if what:
        why += f", capped at {what}"
    floor = max(low, 1)  # active: at least one consumer
    if want < floor:
        return floor, f"{why}, raised to min {floor}"
    return want, why


class AutoscalePolicy:
    """Stateful (recommendation history, last action) but deterministic in its inputs."""

    def __init__(self, config: PolicyConfig | None = None) -> None:
        self.config = config or PolicyConfig()
        self._recs: deque[tuple[datetime, int]] = deque()
        self._first_seen: datetime | None = None
        self._last_time: datetime | None = None
        self._last_action: datetime | None = None

    def decide(self, now: datetime, current: int, lags: Mapping[int, int]) -> Decision:
        """One decision for the group's current consumer count and per-partition lag."""
        self._check(now, current, lags)
        cfg = self.config
        rec, why = recommend(cfg, current, lags)
        self._remember(now, rec)
        low, high = bounds(cfg, len(lags))
        notes: list[str] = []
        up_w, down_w = cfg.scale_up_stabilization_s, cfg.scale_down_stabilization_s
        up_rec = min(r for t, r in self._recs if _age(now, t) < up_w or t == now)
        down_rec = max(r for t, r in self._recs if _age(now, t) < down_w or t == now)
        desired = min(max(current, up_rec), down_rec)
        if rec > current and desired < rec:
            notes.append(f"scale-up held: lowest recommendation in {up_w:.0f} s is {up_rec}")
        if rec < current and desired > rec:
            notes.append(f"scale-down held: highest recommendation in {down_w:.0f} s is {down_rec}")
        seen = _age(now, self._first_seen or now)
        if desired < current and seen < down_w:
            desired = current
            notes.append(
                f"scale-down waits for {down_w:.0f} s of observations ({seen:.0f} s so far)"
            )
        step = cfg.scale_down_max_step
        if step is not None and desired < current - step:
            desired = current - step
            notes.append(f"scale-down limited to {step} per step")
        in_bounds = low <= current <= high
        desired = min(max(desired, low), high)  # bounds always apply, at once
        since = None if self._last_action is None else _age(now, self._last_action)
        activating = current == 0 and desired > 0
        if (
            desired != current
            and in_bounds
            and not activating
            and since is not None
            and since < cfg.cooldown_s
        ):
            notes.append(
                f"held by cooldown: last change {since:.0f} s ago (< {cfg.cooldown_s:.0f} s)"
            )
            desired = current
        if not in_bounds:
            notes.append(f"{current} is outside [{low}, {high}]")
        action = (
            Action.HOLD
            if desired == current
            else Action.SCALE_UP
            if desired > current
            else Action.SCALE_DOWN
        )
        if action is not Action.HOLD:
            self._last_action = now
        verb = (
            f"hold at {current}"
            if action is Action.HOLD
            else f"{action.value.replace('_', ' ')} {current} -> {desired}"
        )
        reason = f"{verb}: {why}" + "".join(f"; {n}" for n in notes)
        return Decision(
            time=now, current=current, desired=desired, recommended=rec, action=action,
            reason=reason, total_lag=sum(lags.values()), partitions=len(lags),
            partitions_with_lag=sum(1 for v in lags.values() if v > 0),
        )  # fmt: skip

    def _remember(self, now: datetime, rec: int) -> None:
        if self._first_seen is None:
            self._first_seen = now
        self._last_time = now
        self._recs.append((now, rec))
        keep = max(self.config.scale_up_stabilization_s, self.config.scale_down_stabilization_s)
        while self._recs and _age(now, self._recs[0][0]) >= keep and self._recs[0][0] != now:
            self._recs.popleft()

    def _check(self, now: datetime, current: int, lags: Mapping[int, int]) -> None:
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise AutoscaleError(f"now={now!r}: pass a timezone-aware UTC datetime (clock.now())")
        if self._last_time is not None and now < self._last_time:
            raise AutoscaleError(
                f"time went backwards: {now.isoformat()} after {self._last_time.isoformat()}; "
                "pass one monotonic clock's now()"
            )
        if isinstance(current, bool) or not isinstance(current, int) or current < 0:
            raise AutoscaleError(f"current={current!r}: the consumer count is an int >= 0")
        if not lags:
            raise AutoscaleError(
                "lags is empty: pass {partition: lag} for every partition of the topic"
            )
        bad = {
            p: v for p, v in lags.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0
        }
        if bad:
            raise AutoscaleError(
                f"lags {bad}: lag is an int >= 0 per partition (log end - committed)"
            )


def _age(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()
