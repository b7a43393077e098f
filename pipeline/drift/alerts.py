"""Drift level: Healthy / Warning / Critical with reasons, as the dashboard's banner.

The same :class:`~pipeline.autoscale.alerts.Alert` and ``Level`` as the stream's lag
alerts, so the dashboard can show the worst of both. Inputs:

* the **share of drifted features** against warning / critical thresholds (reached =
  that level);
* the **prediction (risk) drift** score likewise. A p-value method (small windows) is
  graded by its own test: drifted = Warning (a p-value is not a size of change);
* with the champion's **feature importance** (:mod:`~pipeline.drift.importance`; weights
  summing to 1), what the share misses: one or two features the model leans on can move
  strongly while most features stay put (a price increase moves ``plan_price`` only).
  Critical when the *importance-weighted* drifted share reaches
  ``importance_critical``, or when a feature carrying at least ``feature_min_importance``
  of the importance drifted by a distance score of at least ``feature_critical`` (a size
  of change, so p-value methods do not count; a feature the model ignores cannot raise
  it). These rules only raise a level to Critical; they add no Warnings, so they cannot
  add the no-drift Warnings that slow ageing of the population gives (docs/drift.md
  measures both rates);
* whatever the importance, a feature that drifted by a distance score of at least
  ``any_feature_critical`` (far beyond what a no-drift world gives any feature, see
  docs/drift.md): the world itself changed. A price increase moves ``plan_price``,
  which an XGBoost champion hardly uses (it splits on ``plan_tier``, which carried the
  price until then), yet the price drives churn: the model's inputs look the same while
  the churn rate moves (concept drift, visible in the realised performance only a
  horizon later). Also Critical only.

>>> from pipeline.drift.check import FeatureDrift
>>> grade(0.45, FeatureDrift("risk", "Wasserstein distance (normed)", 0.05, 0.1, False), drifted=["a", "b"])
Alert(level=<Level.CRITICAL: 'Critical'>, reasons=('45% of features drifted >= critical 40% (a, b)',))
>>> W = "Wasserstein distance (normed)"
>>> feats = [FeatureDrift("plan_price", W, 0.38, 0.1, True), FeatureDrift("tenure", W, 0.01, 0.1, False)]
>>> grade(0.5 / 10, None, ["plan_price"], features=feats, importance={"plan_price": 0.3, "tenure": 0.7}).reasons
('plan_price (30% of the importance, #2) drifted 0.380 >= critical 0.25',)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.autoscale.alerts import Alert, Level
from pipeline.drift.check import DriftResult, FeatureDrift, Skipped
from pipeline.drift.config import DriftConfig

_DEFAULT = DriftConfig()


def _is_pvalue(method: str) -> bool:
    return "p_value" in method.lower().replace("-", "_")


def weighted_share(features: Sequence[FeatureDrift], importance: Mapping[str, float]) -> float | None:
    """Importance of the drifted features / importance of all checked ones (None: no weights)."""
    total = sum(importance.get(f.feature, 0.0) for f in features)
    if total <= 0:
        return None
    return sum(importance.get(f.feature, 0.0) for f in features if f.drifted) / total


def _importance_findings(features: Sequence[FeatureDrift], importance: Mapping[str, float],
                         cfg: DriftConfig) -> list[tuple[Level, str]]:
    found: list[tuple[Level, str]] = []
    ws = weighted_share(features, importance)
    if ws is None:
        return found
    if ws >= cfg.importance_critical:
        found.append((Level.CRITICAL, f"drifted features carry {ws:.0%} of the model's importance "
                                      f">= critical {cfg.importance_critical:.0%}"))
    checked = {f.feature: f for f in features}
    ranked = [name for name, _ in sorted(importance.items(), key=lambda kv: -kv[1]) if name in checked]
    for rank, name in enumerate(ranked, 1):
        f, w = checked[name], importance[name]
        if (w >= cfg.feature_min_importance and f.drifted and not _is_pvalue(f.method)
                and f.score >= cfg.feature_critical):
            found.append((Level.CRITICAL, f"{name} ({w:.0%} of the importance, #{rank}) drifted {f.score:.3f} "
                                          f">= critical {cfg.feature_critical:g}"))
    return found


def _world_findings(features: Sequence[FeatureDrift], importance: Mapping[str, float] | None,
                    cfg: DriftConfig) -> list[tuple[Level, str]]:
    found = []
    moved = [f for f in sorted(features, key=lambda f: -f.score)
             if f.drifted and not _is_pvalue(f.method) and f.score >= cfg.any_feature_critical]
    for f in moved[:3]:  # the largest moves name it; the rest are counted
        w = (importance or {}).get(f.feature)
        share = "" if w is None else f", {w:.0%} of the importance"
        found.append((Level.CRITICAL, f"{f.feature} drifted {f.score:.3f} >= critical {cfg.any_feature_critical:g} "
                                      f"for any feature (the world changed{share})"))
    if len(moved) > 3:
        found.append((Level.CRITICAL, f"{len(moved) - 3} more feature(s) drifted >= {cfg.any_feature_critical:g}"))
    return found


def grade(
    share: float, prediction: FeatureDrift | None, drifted: Sequence[str] = (), cfg: DriftConfig = _DEFAULT,
    *, features: Sequence[FeatureDrift] = (), importance: Mapping[str, float] | None = None,
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
    if importance:
        found.extend(_importance_findings(features, importance, cfg))
    world = _world_findings(features, importance, cfg)
    found.extend(w for w in world if w[1].split(" ", 1)[0] not in
                 {t.split(" ", 1)[0] for lv, t in found if lv is Level.CRITICAL})  # one reason per feature
    if not found:
        pred = "" if prediction is None else f"; risk drift {prediction.score:.3f}"
        ws = weighted_share(features, importance) if importance else None
        weighted = "" if ws is None else f" ({ws:.0%} of importance)"
        return Alert(Level.HEALTHY, (f"{share:.0%} of features drifted{weighted}{pred}",))
    found.sort(key=lambda f: -f[0].rank)
    return Alert(found[0][0], tuple(t for _, t in found))


def assess_drift(result: DriftResult | Skipped, cfg: DriftConfig = _DEFAULT,
                 importance: Mapping[str, float] | None = None) -> Alert:
    """The level of one check; a skipped check is Healthy with the skip reason.
    ``importance``: the champion's feature weights (:mod:`~pipeline.drift.importance`)."""
    if isinstance(result, Skipped):
        return Alert(Level.HEALTHY, (f"drift check skipped: {result.reason}",))
    drifted = [f.feature for f in sorted(result.features, key=lambda f: -f.score) if f.drifted]
    return grade(result.drifted_share, result.prediction, drifted, cfg, features=result.features,
                 importance=importance)
