"""Drift monitoring settings: one frozen object, validated at construction.

Every field can come from :class:`pipeline.config.Settings` once it grows a
``drift_<field>`` attribute (env ``CHURN_DRIFT_<FIELD>``); until then the defaults here
apply (:meth:`DriftConfig.from_settings`, the same pattern as the stream's config).

>>> cfg = DriftConfig(window_rows=2_000)
>>> cfg.window_rows, cfg.min_rows
(2000, 500)
>>> DriftConfig(share_warning=0.5, share_critical=0.2)
Traceback (most recent call last):
...
pipeline.errors.ConfigError: invalid drift setting(s): share_warning=0.5, share_critical=0.2 (need 0 < warning <= critical <= 1)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal

from pipeline.errors import ConfigError

STOPPED = "the stream stopped"  # why a running check was ended, unless the caller says otherwise


DEFAULT_RETRAIN_AFTER_DAYS = 30  # flows.train's default label horizon


@dataclass(frozen=True)
class DriftConfig:
    enabled: bool = True
    # the window of recent scored feature vectors (a ring buffer; newest rows win)
    window_rows: int = 10_000
    min_rows: int = 500  # a smaller window is skipped (logged), not checked
    dedupe_users: bool = True  # keep each user's newest vector only (the reference has one per user)
    active_only: bool = True  # the reference holds subscribed users only
    # cadence: a check is due after this many scored rows, or minutes of wall clock, or
    # (per_event_day) when event time crosses a UTC midnight -- whichever comes first
    every_rows: int = 50_000
    every_minutes: float = 10.0
    per_event_day: bool = True
    full_report_every: int = 6  # render the full HTML report on every N-th check (0: never)
    report_retention: int = 48  # keep this many HTML reports (older ones are deleted)
    # Evidently: None = its defaults (K-S / chi-square p-values up to 1,000 rows,
    # Wasserstein / Jensen-Shannon distances above)
    method: str | None = None
    threshold: float | None = None
    drift_share: float = 0.5  # Evidently's dataset-drift rule: share of drifted columns >= this
    # alert levels (Healthy / Warning / Critical)
    share_warning: float = 0.2
    share_critical: float = 0.4
    prediction_warning: float = 0.1  # score of the prediction drift (distance methods)
    prediction_critical: float = 0.2
    # with the champion's feature importance (pipeline.drift.alerts): Critical when the
    # drifted features carry this share of the importance, or when a feature carrying at
    # least feature_min_importance of it drifted by a distance score of at least
    # feature_critical (Evidently's drift threshold is 0.1; weekly rhythms of a no-drift
    # simulation reach ~0.2, see docs/drift.md)
    importance_critical: float = 0.5
    feature_critical: float = 0.25
    feature_min_importance: float = 0.03
    # any feature, whatever its importance, drifted by at least this distance: Critical
    # (no-drift simulations give at most ~0.22, docs/drift.md; a 25 % price increase moves
    # plan_price past 0.3 about two weeks after the onset)
    any_feature_critical: float = 0.3
    # closed loop
    retrain_cooldown_hours: float = 24.0  # from a run actually created to the next request
    # the retrain policy (pipeline.drift.episodes): "episode" -- Critical drift opens an
    # episode and the retrain waits for labelled post-onset data (or a realised-AUC drop);
    # "immediate" -- every Critical check outside the cooldown asks at once (the old rule)
    retrain_policy: Literal["episode", "immediate"] = "episode"
    # days after the onset before a retrain; None (default): the champion's label horizon
    # (its ``horizon_days`` registry tag, read by the stream), DEFAULT_RETRAIN_AFTER_DAYS if unknown
    retrain_after_days: int | None = None
    retrain_min_churners: int = 50  # cancels since the onset before a retrain can learn anything
    retrain_auc_drop: float = 0.05  # realised ROC-AUC this far below its pre-onset level: retrain early
    retrain_realised_days: int = 3  # newest matured scoring days averaged for that comparison
    retrain_post_onset: bool = True  # the retrain's cutoffs (and the gate's test window) from the onset on
    # an open episode (no retrain sent yet) closes as resolved after this many consecutive
    # Healthy checks of its model: the drift went away, so there is nothing to retrain for
    # (0: never; episodes then end only with a new champion)
    episode_resolve_checks: int = 7
    # ... None (default): the deployment's usual training window (its cutoffs, spacing and
    # warm-up), the gate still on post-onset rows. A number restricts the cutoffs to that many
    # days before the onset on; it must leave the train flow's rolling-origin CV a fold (cutoffs
    # before the test window spanning more than the horizon): with a 30-day horizon, >= ~120.
    # (From the onset only, or 60 days before it, the demo's retrain failed: "no
    # cross-validation fold fits".)
    retrain_lookback_days: int | None = None
    retrain_every_days: int = 3  # cutoff spacing of that retrain (with retrain_lookback_days set)
    executor: Literal["process", "thread", "inline"] = "process"
    # in the stream (pipeline.stream.drift_hook): what the window holds. "day_snapshot":
    # at each UTC midnight of event time, every active user's vector (like the training
    # reference: active users at midnight cutoffs); "scored": the vectors the stream
    # scores (users as of their latest event, mid-day; not like the reference, see docs/drift.md)
    observe: Literal["day_snapshot", "scored"] = "day_snapshot"
    warmup_days: int = 30  # no checks until a partition has this many days of events (feature windows fill)
    leader_partition: int = 0  # the worker owning this partition runs the (one) monitor
    # who is told "retrain wanted, because ..." ("module:Factory", see pipeline.drift.retrain);
    # "" logs it only. The stream flow sets flows.retrain:PrefectRunRequester.
    retrain_requester: str = ""

    def __post_init__(self) -> None:
        bad = []
        for k in ("window_rows", "min_rows", "every_rows", "report_retention"):
            v = getattr(self, k)
            if not (isinstance(v, int) and v >= 1):
                bad.append(f"{k}={v!r} (an int >= 1)")
        if isinstance(self.min_rows, int) and isinstance(self.window_rows, int) and self.min_rows > self.window_rows:
            bad.append(f"min_rows={self.min_rows} > window_rows={self.window_rows} (no window could be checked)")
        if not (isinstance(self.full_report_every, int) and self.full_report_every >= 0):
            bad.append(f"full_report_every={self.full_report_every!r} (an int >= 0; 0 = never)")
        if not self.every_minutes > 0:
            bad.append(f"every_minutes={self.every_minutes!r} (minutes > 0)")
        if not (isinstance(self.episode_resolve_checks, int) and self.episode_resolve_checks >= 0):
            bad.append(f"episode_resolve_checks={self.episode_resolve_checks!r} (an int >= 0; 0: never)")
        if not self.retrain_cooldown_hours >= 0:
            bad.append(f"retrain_cooldown_hours={self.retrain_cooldown_hours!r} (hours >= 0)")
        if not 0 < self.drift_share <= 1:
            bad.append(f"drift_share={self.drift_share!r} (a share in (0, 1])")
        for name, (w, c) in {"share": (self.share_warning, self.share_critical),
                             "prediction": (self.prediction_warning, self.prediction_critical)}.items():
            if not 0 < w <= c <= (1 if name == "share" else float("inf")):
                bad.append(f"{name}_warning={w!r}, {name}_critical={c!r} (need 0 < warning <= critical"
                           f"{' <= 1' if name == 'share' else ''})")
        if not 0 < self.importance_critical <= 1:
            bad.append(f"importance_critical={self.importance_critical!r} (a share in (0, 1])")
        if not 0 <= self.feature_min_importance <= 1:
            bad.append(f"feature_min_importance={self.feature_min_importance!r} (a share in [0, 1])")
        if not self.feature_critical > 0:
            bad.append(f"feature_critical={self.feature_critical!r} (a distance score > 0)")
        if not (isinstance(self.any_feature_critical, (int, float)) and self.any_feature_critical > 0):
            bad.append(f"any_feature_critical={self.any_feature_critical!r} (a distance score > 0; no-drift "
                       "simulations reach ~0.22, so keep it above that)")
        if self.threshold is not None and not self.threshold > 0:
            bad.append(f"threshold={self.threshold!r} (> 0, or None for Evidently's default)")
        if self.observe not in ("day_snapshot", "scored"):
            bad.append(f"observe={self.observe!r} ('day_snapshot' or 'scored')")
        for k in ("warmup_days", "leader_partition"):
            if not (isinstance(getattr(self, k), int) and getattr(self, k) >= 0):
                bad.append(f"{k}={getattr(self, k)!r} (an int >= 0)")
        if self.executor not in ("process", "thread", "inline"):
            bad.append(f"executor={self.executor!r} ('process', 'thread' or 'inline')")
        if self.retrain_policy not in ("episode", "immediate"):
            bad.append(f"retrain_policy={self.retrain_policy!r} ('episode' or 'immediate')")
        if self.retrain_lookback_days is not None and not (
                isinstance(self.retrain_lookback_days, int) and self.retrain_lookback_days >= 0):
            bad.append(f"retrain_lookback_days={self.retrain_lookback_days!r} (an int >= 0 days, or unset)")
        for k in ("retrain_after_days", "retrain_realised_days", "retrain_every_days"):
            if k == "retrain_after_days" and self.retrain_after_days is None:
                continue  # the champion's horizon
            if not (isinstance(getattr(self, k), int) and getattr(self, k) >= 1):
                bad.append(f"{k}={getattr(self, k)!r} (an int >= 1 day)")
        if not (isinstance(self.retrain_min_churners, int) and self.retrain_min_churners >= 1):
            bad.append(f"retrain_min_churners={self.retrain_min_churners!r} (an int >= 1: a retrain needs churners "
                       "to learn from)")
        if not 0 < self.retrain_auc_drop < 1:
            bad.append(f"retrain_auc_drop={self.retrain_auc_drop!r} (a ROC-AUC difference in (0, 1), e.g. 0.05)")
        if self.retrain_requester and ":" not in self.retrain_requester:
            bad.append(f"retrain_requester={self.retrain_requester!r} ('package.module:Factory', or '' for none)")
        if bad:
            raise ConfigError(f"invalid drift setting(s): {'; '.join(bad)}")

    def replace(self, **changes: Any) -> DriftConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def after_days(self, horizon_days: int | None = None) -> int:
        """Days after a drift onset before a retrain: ``retrain_after_days`` if set, else
        the champion's label horizon ``horizon_days`` (labels of post-onset snapshots
        mature then), else :data:`DEFAULT_RETRAIN_AFTER_DAYS`."""
        if self.retrain_after_days is not None:
            return self.retrain_after_days
        if isinstance(horizon_days, int) and horizon_days >= 1:
            return horizon_days
        return DEFAULT_RETRAIN_AFTER_DAYS

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DriftConfig:
        """Defaults, then ``settings.drift_<field>`` where present, then ``overrides``."""
        values = {f.name: getattr(settings, f"drift_{f.name}") for f in fields(cls)
                  if getattr(settings, f"drift_{f.name}", None) is not None}
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"unknown drift setting(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(**values)
