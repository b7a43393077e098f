"""Drift level: Healthy / Warning / Critical with reasons, as the dashboard's banner.

The same :class:`~pipeline.autoscale.alerts.Alert` and ``Level`` as the stream's lag
alerts, so the dashboard can show the worst of both. Inputs: the share of drifted
features and the prediction (risk) drift score against warning / critical thresholds
(reached = that level). A p-value method for prediction drift (small windows) is
graded by its own test: drifted = Warning (a p-value is not a size of change).

>>> from pipeline.drift.check import FeatureDrift
>>> grade(0.45, FeatureDrift("risk", "Wasserstein distance (normed)", 0.05, 0.1, False), drifted=["a", "b"])
Alert(level=<Level.CRITICAL: 'Critical'>, reasons=('45% of features drifted >= critical 40% (a, b)',))
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.autoscale.alerts import Alert, Level
from pipeline.drift.check import DriftResult, FeatureDrift, Skipped
from pipeline.drift.config import DriftConfig

_DEFAULT = DriftConfig()


def _is_pvalue(method: str) -> bool:
    return "p_value" in method.lower().replace("-", "_")


def grade(
    share: float, prediction: FeatureDrift | None, drifted: Sequence[str] = (), cfg: DriftConfig = _DEFAULT
) -> Alert:
    found: list[tuple[Level, str]] = []
    lvl = (Level.CRITICAL if share >= cfg.share_critical
           else Level.WARNING if share >= cfg.share_warning else Level.HEALTHY)  # fmt: skip
    if lvl is not Level.HEALTHY:
        limit = cfg.share_critical if lvl is Level.CRITICAL else cfg.share_warning
        names = ", ".join(drifted[:5]) + (", ..." if len(drifted) > 5 else "")
        found.append((lvl, f"{share:.0%} of features drifted >= {lvl.value.lower()} {limit:.0%}"
                           + (f" ({names})" if names else "")))  # fmt: skip
    if prediction is not None:
        p = prediction
        if _is_pvalue(p.method):
            if p.drifted:
                found.append((Level.WARNING, f"risk distribution drifted ({p.method} {p.score:.3g} < {p.threshold:g})"))
        else:
            lvl = (Level.CRITICAL if p.score >= cfg.prediction_critical
                   else Level.WARNING if p.score >= cfg.prediction_warning else Level.HEALTHY)  # fmt: skip
            if lvl is not Level.HEALTHY:
                limit = cfg.prediction_critical if lvl is Level.CRITICAL else cfg.prediction_warning
                found.append((lvl, f"risk drift {p.score:.3f} ({p.method}) >= {lvl.value.lower()} {limit:g}"))
    if not found:
        pred = "" if prediction is None else f"; risk drift {prediction.score:.3f}"
        return Alert(Level.HEALTHY, (f"{share:.0%} of features drifted{pred}",))
    found.sort(key=lambda f: -f[0].rank)
    return Alert(found[0][0], tuple(t for _, t in found))


def assess_drift(result: DriftResult | Skipped, cfg: DriftConfig = _DEFAULT) -> Alert:
    """The level of one check; a skipped check is Healthy with the skip reason."""
    if isinstance(result, Skipped):
        return Alert(Level.HEALTHY, (f"drift check skipped: {result.reason}",))
    drifted = [f.feature for f in sorted(result.features, key=lambda f: -f.score) if f.drifted]
    return grade(result.drifted_share, result.prediction, drifted, cfg)
