"""What an imported source can and cannot tell the feature engine.

Where the source lacks the events or fields a built-in feature reads, that feature would
only ever take its documented default (the registry's value for a user with no such
events, or a constant derived from a mapping constant): :func:`source_profile` lists
those features with the reason, and the topic's **feature spec** (``feature_spec``,
:mod:`pipeline.features.spec`) leaves them out and adds the per-action features of the
mapping's declared actions. ``churn import`` stores the profile as ``profile.json``
beside the ledger; training and the stream load the spec from it
(:func:`pipeline.features.spec.spec_for`), the train flow records it with the model, so
the model and the stream use the same, documented feature set.
"""

from __future__ import annotations

from typing import Any

from pipeline.features.registry import FEATURE_NAMES
from pipeline.features.spec import PROFILE_KEY, FeatureSpec
from pipeline.ingest.mapping import SourceMapping

SESSION_FEATURES = tuple(f for f in FEATURE_NAMES if f.startswith(("sessions_", "active_days_")))
WATCH_FEATURES = tuple(f for f in FEATURE_NAMES if f.startswith("watch_"))


def source_profile(m: SourceMapping) -> dict[str, Any]:
    """``{"defaulted": {feature: reason}, "derived": {feature: note}, ...}`` for a mapping."""
    types = m.target_types
    specs = {t: {**m.fields.get(t, {})} for t in types}
    for r in m.type_values.values():
        specs.setdefault(r.type, {}).update(r.fields)
    defaulted: dict[str, str] = {}
    derived: dict[str, str] = {}

    def none(features, why: str) -> None:
        for f in features:
            defaulted.setdefault(f, why)

    if "session" not in types:
        none(SESSION_FEATURES + WATCH_FEATURES + ("days_since_last_session",),
             "no session events in the source: registry default")
    elif not specs["session"]["watch_minutes"].from_column:
        none(WATCH_FEATURES, f"watch_minutes is the constant {specs['session']['watch_minutes'].const!r}: "
             "derived from a constant")
    if "payment" not in types:
        none(("payments_30d",), "no payment events in the source: registry default 0")
    if "payment_failed" not in types:  # every charge the source logs succeeded: the latest never failed
        none(("payments_failed_30d", "last_payment_failed"), "no payment_failed events in the source: "
             "registry default 0")
    if not types & {"payment", "payment_failed"}:
        derived["plan_price"] = "no charges in the source: the list price of the current plan (PLAN_LIST_PRICES)"
    if "support_ticket" not in types:
        none(("tickets_7d", "tickets_30d"), "no support_ticket events in the source: registry default 0")
    if "plan_change" not in types:
        none(("downgrades_30d", "upgrades_30d"), "no plan_change events in the source: registry default 0")
    if m.synthesize_signup and "signup" not in types:
        derived["tenure_days"] = "no signup events: days since the user's first row in the import"
    plan_sources = [m.signup_plan] if m.signup_plan is not None else []
    plan_sources += [s for t in ("signup", "payment") if t in specs for s in [specs[t].get("plan")] if s]
    if "plan_change" not in types and plan_sources and not any(s.from_column for s in plan_sources):
        none(("plan_tier",), "the plan is a mapping constant: constant")
        if "plan_price" in derived:  # the list price of a constant plan
            del derived["plan_price"]
            none(("plan_price",), "no charges and a constant plan: the list price of that plan, constant")
    churn = ({"definition": "cancel", "note": "label = an explicit cancel event in (t, t + horizon]"}
             if m.churn == "cancel" else
             {"definition": "inactivity", "inactive_days": m.inactive_days,
              "note": f"a cancel is synthesized {m.inactive_days} days after a user's last activity (when the data "
                      "reaches that day); label = that cancel in (t, t + horizon]"})
    spec = FeatureSpec(tuple(f for f in FEATURE_NAMES if f not in defaulted), m.actions)
    return {"mapping": m.name, "mapping_file": m.file, "mapping_digest": m.digest, "churn": churn,
            "event_types": sorted(types),
            "defaulted": dict(sorted(defaulted.items(), key=lambda kv: FEATURE_NAMES.index(kv[0]))),
            "derived": derived, PROFILE_KEY: spec.document()}


def annotate_dataset(ds: Any, profile: dict[str, Any] | None) -> None:
    """Record in the dataset's feature registry where each feature's values come from.

    Every entry of ``ds.feature_registry`` (the registry doc logged with the model) gets
    ``source``: ``"default: <why>"`` for a feature the imported source cannot supply,
    ``"derived: <how>"`` for one computed differently, else ``"events"``. ``ds.data_source``
    keeps the profile itself. A simulated topic (no profile) is left untouched.
    """
    if profile is None:
        return
    defaulted, derived = profile.get("defaulted", {}), profile.get("derived", {})
    for entry in ds.feature_registry:
        name = entry["name"]
        entry["source"] = (f"default: {defaulted[name]}" if name in defaulted
                           else f"derived: {derived[name]}" if name in derived
                           else "declared action" if entry.get("action") else "events")
    ds.data_source = profile


def source_tags(ds: Any) -> dict[str, str]:
    """MLflow tags naming the imported source and the defaulted features ({} if simulated)."""
    profile = getattr(ds, "data_source", None)
    if not profile:
        return {}
    return {"data_source": f"import:{profile.get('mapping', '?')}",
            "churn_definition": str(profile.get("churn", {}).get("definition", "")),
            "features_from_defaults": ",".join(profile.get("defaulted", {})) or "-"}
