"""Drift episodes and the retrain policy: retrain when there is something to learn from.

A Critical check opens an **episode** for the champion (stored with its *onset*: the
first day of the streak of checks in which the features behind the alert had drifted).
Labels need the horizon to mature, so a retrain right away would learn from pre-drift
data only (and the gate would rightly reject it). The policy (:func:`decide`) therefore
**defers** the retrain until

* the label horizon has elapsed since the onset (``retrain_after_days``, by default the
  champion's own ``horizon_days``): snapshots at
  cutoffs from the onset on have labels, and
* at least ``retrain_min_churners`` subscribers cancelled since the onset,

or asks **earlier** when the champion's *realised* ROC-AUC (newest matured scoring days,
:mod:`pipeline.monitoring.realised`) fell ``retrain_auc_drop`` below its level before
the onset. The request carries the training window: cutoffs from the onset on (daily:
``retrain_every_days``), so the retrain learns the new world and its test window -- on
which the gate compares challenger and champion -- is post-onset labelled data.

Every decision is a row (:data:`DECISIONS`, with its reason) beside the episode, written
by :class:`pipeline.drift.monitor.DriftMonitor`; the cooldown starts only once the
requester says a run was created.

>>> from datetime import UTC, datetime, timedelta
>>> from pipeline.drift.config import DriftConfig
>>> onset = datetime(2026, 7, 9, tzinfo=UTC)
>>> d = decide(onset, Evidence(onset + timedelta(days=3), churners=12), DriftConfig())
>>> d.action, d.due.date()
('defer', datetime.date(2026, 8, 8))
>>> decide(onset, Evidence(onset + timedelta(days=31), churners=300), DriftConfig()).action
'request'
>>> decide(onset, Evidence(onset + timedelta(days=9), 80, realised_auc=0.66, baseline_auc=0.78), DriftConfig()).reason
'realised ROC-AUC 0.660 < 0.780 before the onset - 0.05: retrain now'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pandas as pd

from pipeline.drift.config import DriftConfig

# decision kinds, as stored (retrain_decisions.decision) and shown on the Drift page
OPENED, DEFERRED, REQUESTED, SENT, SEND_FAILED, COOLDOWN, NO_REQUESTER, CLOSED, RESOLVED = (
    "episode opened", "deferred", "requested", "sent", "failed to send", "skipped: cooldown",
    "skipped: no requester", "episode closed", "episode resolved")
DECISIONS = (OPENED, DEFERRED, REQUESTED, SENT, SEND_FAILED, COOLDOWN, NO_REQUESTER, CLOSED, RESOLVED)
GATE_PROMOTED, GATE_REJECTED = "gate promoted", "gate rejected"  # recorded by whoever ran the retrain's gate
# what the decision table lists first: what reached (or tried to reach) the orchestrator, and outcomes
OUTCOMES = (REQUESTED, SENT, SEND_FAILED, COOLDOWN, NO_REQUESTER, CLOSED, RESOLVED, GATE_PROMOTED, GATE_REJECTED)


@dataclass(frozen=True)
class Evidence:
    """What the policy knows at event time ``now``: cancels since the onset, and the
    champion's realised ROC-AUC on the newest matured days vs before the onset (None: unknown)."""

    now: datetime
    churners: int
    realised_auc: float | None = None
    baseline_auc: float | None = None
    realised_day: datetime | None = None  # the newest matured scoring day behind realised_auc


@dataclass(frozen=True)
class PolicyDecision:
    action: Literal["defer", "request"]
    reason: str
    due: datetime | None = None  # defer: when the horizon has elapsed since the onset


def _auc_dropped(ev: Evidence, cfg: DriftConfig) -> bool:
    if ev.realised_auc is None or ev.baseline_auc is None:
        return False
    if math.isnan(ev.realised_auc) or math.isnan(ev.baseline_auc):
        return False
    return ev.realised_auc < ev.baseline_auc - cfg.retrain_auc_drop


def decide(onset: datetime, ev: Evidence, cfg: DriftConfig, horizon_days: int | None = None) -> PolicyDecision:
    """Retrain now, or defer (until when, and why). ``horizon_days``: the champion's label
    horizon, the wait unless ``cfg.retrain_after_days`` is set (:meth:`DriftConfig.after_days`)."""
    after = cfg.after_days(horizon_days)
    due = onset + timedelta(days=after)
    enough = ev.churners >= cfg.retrain_min_churners
    if _auc_dropped(ev, cfg):
        if enough:
            return PolicyDecision("request", f"realised ROC-AUC {ev.realised_auc:.3f} < {ev.baseline_auc:.3f} "
                                             f"before the onset - {cfg.retrain_auc_drop:g}: retrain now")
        return PolicyDecision("defer", f"realised ROC-AUC {ev.realised_auc:.3f} dropped, but only {ev.churners} "
                                       f"churners since the onset < {cfg.retrain_min_churners}", due)
    if ev.now >= due:
        if enough:
            return PolicyDecision("request", f"labelled post-onset data: {after} days since the "
                                             f"onset {onset.date()}, {ev.churners} churners >= "
                                             f"{cfg.retrain_min_churners}")
        return PolicyDecision("defer", f"{after} days since the onset, but only {ev.churners} "
                                       f"churners < {cfg.retrain_min_churners}: deferred until there are more")
    return PolicyDecision("defer", f"labels of post-onset users mature on {due.date()} "
                                   f"({after} d after the onset {onset.date()}); "
                                   f"{ev.churners} churners so far", due)


def train_parameters(onset: datetime, cfg: DriftConfig, episode_id: str | None = None) -> dict[str, Any]:
    """The train flow's parameters for a retrain after a drift: ``gate_from`` = the onset, so
    challenger and champion are judged on post-onset labelled rows only. The training window
    is the deployment's usual one, or, with ``retrain_lookback_days``, cutoffs from that many
    days before the onset every ``retrain_every_days`` (features still see the full history).
    ``retrain_post_onset=False``: no window or gate parameters (the deployment's usual ones).
    ``episode_id``: the episode the retrain is for; the train flow records its gate outcome
    (:data:`GATE_PROMOTED` / :data:`GATE_REJECTED`) beside the episode's decisions."""
    episode = {} if episode_id is None else {"episode_id": str(episode_id)}
    if not cfg.retrain_post_onset:
        return episode
    day: date = onset.date()
    if cfg.retrain_lookback_days is None:
        return {"gate_from": day.isoformat(), **episode}
    start = day - timedelta(days=cfg.retrain_lookback_days)
    return {"start": start.isoformat(), "warmup_days": 0, "every_days": cfg.retrain_every_days,
            "gate_from": day.isoformat(), **episode}


def estimate_onset(current: datetime, drifted: list[str], runs: pd.DataFrame, features: pd.DataFrame,
                   min_score: float = 0.0) -> datetime:
    """The first day of the streak of stored checks (newest back) in which any of the
    ``drifted`` features (those behind the alert) had drifted by a score of at least
    ``min_score``; ``current`` if none.

    ``runs``: ``Store.drift_runs()`` of the model version (oldest first); ``features``:
    ``Store.drift_features()`` rows of those runs."""
    onset = current
    if runs.empty or not drifted:
        return onset
    flagged = features[features["feature"].isin(drifted) & features["drifted"].astype(bool)
                       & (features["score"] >= min_score if "score" in features else True)]
    hit = set(flagged["run_id"])
    for r in runs.sort_values("time", ascending=False).itertuples(index=False):
        start = r.window_start if r.window_start is not None and not pd.isna(r.window_start) else r.time
        if start > current:
            continue
        if r.run_id not in hit:
            break
        onset = pd.Timestamp(start).to_pydatetime()
    return onset
