"""The champion gate as a pure decision: challenger vs champion on the same test window.

A challenger replaces the champion only if it is at least as good on *every* gate metric
(default ROC-AUC and lift at the top 10 %), within an optional tolerance. A first model
(no champion) is promoted; so is a challenger whose champion cannot score today's
feature set (the stream could not run that champion any more).

>>> decide({"roc_auc": 0.80, "lift_10": 3.1}, {"roc_auc": 0.79, "lift_10": 3.0}).promoted
True
>>> decide({"roc_auc": 0.80, "lift_10": 2.9}, {"roc_auc": 0.79, "lift_10": 3.0}).reason
'lift_10 2.9000 < champion 3.0000'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


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
class GateDecision:
    promoted: bool
    reason: str
    challenger: Mapping[str, float] = field(default_factory=dict)
    champion: Mapping[str, float] | None = None
    champion_version: str | None = None

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "rejected"


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    policy: GatePolicy = GatePolicy(),  # noqa: B008 - frozen, immutable default
    champion_version: str | None = None,
    unscorable: str | None = None,
) -> GateDecision:
    """Promote iff the challenger is at least as good on every policy metric.

    ``unscorable`` is the reason the champion could not be scored (None when it was).
    """
    missing = [m for m in policy.metrics if m not in challenger or math.isnan(challenger[m])]
    if missing:
        raise ValueError(f"challenger metrics lack gate metric(s) {missing}; have {sorted(challenger)}")
    chal = {m: float(challenger[m]) for m in policy.metrics}
    if champion is None and unscorable is None:
        return GateDecision(True, "first model: no champion yet", chal, None, champion_version)
    if unscorable is not None:
        return GateDecision(True, f"champion v{champion_version} cannot be scored: {unscorable}", chal, None,
                            champion_version)
    champ = {m: float(champion[m]) for m in policy.metrics}
    worse = [m for m in policy.metrics if chal[m] < champ[m] - policy.tolerance]
    if worse:
        reason = "; ".join(f"{m} {chal[m]:.4f} < champion {champ[m]:.4f}" for m in worse)
        return GateDecision(False, reason, chal, champ, champion_version)
    reason = "; ".join(f"{m} {chal[m]:.4f} >= champion {champ[m]:.4f}" for m in policy.metrics)
    if policy.tolerance:
        reason += f" (tolerance {policy.tolerance})"
    return GateDecision(True, reason, chal, champ, champion_version)
