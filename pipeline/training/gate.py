"""The champion gate as a pure decision: challenger vs champion, like with like.

Order of the checks:

1. no champion yet: the first model is promoted;
2. **comparable?** a champion with another label horizon, feature spec or topic measures a
   different thing (a 14-day risk is not a 30-day risk): the challenger is *refused*, the
   reason names what differs, unless the caller forces the replacement;
3. **scorable?** the champion is loaded and scored on the challenger's test window (the most
   recent labelled window). Any error doing so rejects the challenger with the error as the
   reason: the gate fails *closed* (a broken registry never promotes by accident), unless forced;
4. **better?** promoted iff at least as good on *every* gate metric (default ROC-AUC and lift
   at the top 10 %), within an optional tolerance; the paired-bootstrap difference and its
   95 % interval are recorded beside each metric.

After a drift episode (:mod:`pipeline.drift.episodes`) both are compared on labelled data
from the onset on only (:func:`post_onset_rows`): the world the challenger must serve.

>>> decide({"roc_auc": 0.80, "lift_10": 3.1}, {"roc_auc": 0.79, "lift_10": 3.0}).promoted
True
>>> decide({"roc_auc": 0.80, "lift_10": 2.9}, {"roc_auc": 0.79, "lift_10": 3.0}).reason
'lift_10 2.9000 < champion 3.0000'
>>> decide({"roc_auc": 0.9, "lift_10": 4}, None, refused=["horizon 14 d != champion's 30 d"]).decision
'rejected'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GatePolicy:
    metrics: tuple[str, ...] = ("roc_auc", "lift_10")
    tolerance: float = 0.0  # challenger may trail by this much and still pass (absolute)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("a gate needs at least one metric, e.g. ('roc_auc', 'lift_10')")
        if self.tolerance < 0:
            raise ValueError(f"gate tolerance must be >= 0, got {self.tolerance}")


@dataclass(frozen=True)
class Identity:
    """What a model's risk means: its label horizon, feature spec and topic (None: unknown)."""

    horizon_days: int | None = None
    feature_set: str | None = None
    topic: str | None = None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], feature_tag: str = "feature_set_version",
                  horizon_tag: str = "horizon_days", topic_tag: str = "topic") -> Identity:
        h = tags.get(horizon_tag)
        return cls(int(float(h)) if h not in (None, "") else None, tags.get(feature_tag) or None,
                   tags.get(topic_tag) or None)


def differences(challenger: Identity, champion: Identity) -> list[str]:
    """Why the two are not comparable ([] when they are).

    An unknown horizon or topic (a model registered before they were tagged) is not held
    against it; an untagged feature spec is, since the stream refuses such a champion too.
    """
    out = []
    if challenger.horizon_days and champion.horizon_days and challenger.horizon_days != champion.horizon_days:
        out.append(f"horizon {challenger.horizon_days} d differs from the champion's {champion.horizon_days} d")
    if challenger.feature_set != champion.feature_set:
        out.append(f"feature spec {challenger.feature_set or '(untagged)'} differs from the champion's "
                   f"{champion.feature_set or '(untagged)'}")
    if challenger.topic and champion.topic and challenger.topic != champion.topic:
        out.append(f"topic {challenger.topic!r} differs from the champion's {champion.topic!r}")
    return out


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    challenger: Mapping[str, float] = field(default_factory=dict)
    champion: Mapping[str, float] | None = None
    champion_version: str | None = None
    differences: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # metric -> diff, ci_low, ci_high
    forced: bool = False

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "rejected"


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    policy: GatePolicy = GatePolicy(),  # noqa: B008 - frozen, immutable default
    champion_version: str | None = None,
    unscorable: str | None = None,
    refused: Sequence[str] = (),
    force: bool = False,
    paired: Mapping[str, Mapping[str, float]] | None = None,
) -> GateDecision:
    """Promote iff comparable, scorable and at least as good on every policy metric.

    ``refused``: why the champion is not comparable; ``unscorable``: the error loading or
    scoring it; ``force``: replace it anyway (recorded in the reason); ``paired``: the
    bootstrap differences challenger - champion per metric.
    """
    missing = [m for m in policy.metrics if m not in challenger or math.isnan(challenger[m])]
    if missing:
        raise ValueError(f"challenger metrics lack gate metric(s) {missing}; have {sorted(challenger)}")
    chal = {m: float(challenger[m]) for m in policy.metrics}
    champ_ref = f"champion v{champion_version}" if champion_version else "the champion"
    if refused:
        why = "; ".join(refused)
        if force:
            return GateDecision(True, f"forced over {champ_ref}: {why}", chal, None, champion_version, forced=True)
        return GateDecision(False, f"not comparable with {champ_ref}: {why}; retrain with the champion's settings, "
                                   "or force the replacement (--force / force=True)", chal, None, champion_version)
    if unscorable is not None:
        if force:
            return GateDecision(True, f"forced over {champ_ref}, which could not be scored: {unscorable}", chal, None,
                                champion_version, forced=True)
        return GateDecision(False, f"{champ_ref} could not be scored ({unscorable}); rejected until it can be "
                                   "compared (fail closed) - fix the registry/model or force the replacement",
                            chal, None, champion_version)
    if champion is None:
        return GateDecision(True, "first model: no champion yet", chal, None, champion_version)
    champ = {m: float(champion[m]) for m in policy.metrics}
    diffs = {m: dict(v) for m, v in (paired or {}).items() if m in policy.metrics}

    def ci(m: str) -> str:
        d = diffs.get(m)
        return "" if not d else f" (diff {d['diff']:+.4f}, 95% CI {d['ci_low']:+.4f}..{d['ci_high']:+.4f})"

    worse = [m for m in policy.metrics if chal[m] < champ[m] - policy.tolerance]
    if worse:
        reason = "; ".join(f"{m} {chal[m]:.4f} < champion {champ[m]:.4f}{ci(m)}" for m in worse)
        return GateDecision(False, reason, chal, champ, champion_version, diffs)
    reason = "; ".join(f"{m} {chal[m]:.4f} >= champion {champ[m]:.4f}{ci(m)}" for m in policy.metrics)
    if policy.tolerance:
        reason += f" (tolerance {policy.tolerance})"
    return GateDecision(True, reason, chal, champ, champion_version, diffs)


def post_onset_rows(cutoffs: Any, since: date | str | None, labels: Any, *, min_rows: int = 200,
                    min_positives: int = 10) -> np.ndarray:
    """Mask of the test rows with a cutoff on or after ``since`` (all rows if None).

    Refuses (``ValueError`` naming the counts and the remedy) when that leaves fewer than
    ``min_rows`` rows or ``min_positives`` churners: a gate on too little post-onset data
    would decide by noise.

    >>> import pandas as pd
    >>> cut = pd.to_datetime(["2026-07-01", "2026-07-08", "2026-07-15"], utc=True)
    >>> post_onset_rows(cut, "2026-07-05", [0, 1, 1], min_rows=1, min_positives=1).tolist()
    [False, True, True]
    """
    import pandas as pd

    c = pd.DatetimeIndex(pd.to_datetime(np.asarray(cutoffs), utc=True))
    if since is None:
        return np.ones(len(c), bool)
    start = pd.Timestamp(since).tz_localize("UTC") if pd.Timestamp(since).tzinfo is None else pd.Timestamp(since)
    mask = np.asarray(c >= start)
    y = np.asarray(labels)[mask]
    if mask.sum() < min_rows or y.sum() < min_positives:
        raise ValueError(f"the gate needs labelled data from {start.date()} on: the test window has {int(mask.sum())} "
                         f"row(s) with {int(y.sum())} churner(s) there (need >= {min_rows} and >= {min_positives}); "
                         "retrain later, when more post-onset labels have matured, or drop gate_from")
    return mask
