"""Mapping validation: every mistake is one error that names the bad key."""

from __future__ import annotations

import pytest

from pipeline.ingest import MappingError, load_mapping, parse_mapping
from pipeline.ingest.profile import source_profile

from .helpers import DELETE, mapping, mapping_dict, write_mapping


def test_base_mapping_is_valid() -> None:
    m = mapping()
    assert m.user_id == "uid" and m.epoch_unit == "s" and m.unmapped == "drop"
    assert m.target_types == {"session", "payment", "cancel", "support_ticket"}
    assert m.columns() == ["uid", "t", "kind", "minutes", "amount", "plan"]
    assert len(m.digest) == 16


@pytest.mark.parametrize(
    ("changes", "key", "hint"),
    [
        ({"colour": "red"}, "colour", "unknown key"),
        ({"user_id": DELETE}, "user_id", "required"),
        ({"user_id": 3}, "user_id", "column name"),
        ({"timestamp": DELETE}, "timestamp", "required"),
        ({"timestamp__epoch_unit": "minutes"}, "timestamp.epoch_unit", "not one of"),
        ({"timestamp__format": "%Y"}, "timestamp.epoch_unit", "not both"),
        ({"timestamp__timezone": "Europe/Berlin"}, "timestamp.timezone", "UTC by definition"),
        ({"timestamp": {"column": "t", "format": "%Y-%m-%d", "timezone": "Europe/Berln"}}, "timestamp.timezone",
         "unknown time zone"),
        ({"timestamp__zone": "UTC"}, "timestamp.zone", "unknown key"),
        ({"event_type__unmapped": DELETE}, "event_type.unmapped", "drop"),
        ({"event_type__unmapped": "keep"}, "event_type.unmapped", "drop"),
        ({"event_type__values": {}}, "event_type.values", "non-empty"),
        ({"event_type__values__play": "listen"}, "event_type.values.play", "not an event type"),
        ({"fields__sesion": {}}, "fields.sesion", "unknown event type"),
        ({"fields__session__minutes": "m"}, "fields.session.minutes", "has no field"),
        ({"fields__session__device": DELETE}, "fields.session.device", "required for event type session"),
        ({"fields__session__device": {"column": "d", "const": "web"}}, "fields.session.device", "exactly one"),
        ({"fields__session__watch_minutes": {"column": "m", "scale": -1}}, "fields.session.watch_minutes.scale",
         "positive"),
        ({"fields__session__device": {"const": None}}, "fields.session.device.const", "empty"),
        ({"fields__session__device": {"column": "d", "fallback": "x"}}, "fields.session.device.fallback",
         "unknown key"),
        ({"signup__synthesize": "none"}, "signup.synthesize", "never be active"),
        ({"signup__synthesize": "always"}, "signup.synthesize", "first_event"),
        ({"signup__plan": DELETE}, "signup.plan", "required"),
        ({"signup__plan": {"column": "plan"}}, "signup.plan", "default"),
        ({"churn": DELETE}, "churn.definition", "required"),
        ({"churn": {"definition": "inactivity"}}, "churn.inactive_days", "integer"),
        ({"churn": {"definition": "inactivity", "inactive_days": 30}}, "event_type.values.quit", "maps to cancel"),
        ({"churn": {"definition": "cancel", "inactive_days": 30}}, "churn.inactive_days", "only for"),
        ({"event_type__values": {"play": "session"}}, "churn.definition", "no event_type.values entry maps to cancel"),
        ({"max_rejected_share": 2}, "max_rejected_share", "fraction"),
        ({"max_future_skew_hours": -1}, "max_future_skew_hours", "a number of hours 0..876,000 is required"),
        ({"max_future_skew_hours": "2d"}, "max_future_skew_hours", "got '2d'"),
        ({"max_future_skew_hours": True}, "max_future_skew_hours", "got True"),
        ({"max_future_skew_hours": float("nan")}, "max_future_skew_hours", "got nan"),
        ({"max_future_skew_hours": float("inf")}, "max_future_skew_hours", "got inf"),
        ({"format": "xlsx"}, "format", "not one of"),
        ({"csv": {"delimiter": ";;"}}, "csv.delimiter", "one character"),
        ({"version": 2}, "version", "unsupported"),
    ],
)
def test_errors_name_the_bad_key(changes, key, hint) -> None:
    with pytest.raises(MappingError) as exc:
        parse_mapping(mapping_dict(**changes), where="mapping m.yaml")
    msg = str(exc.value)
    assert msg.startswith(f"mapping m.yaml: {key}: "), msg
    assert hint in msg and "\n" not in msg


def test_per_value_overrides_complete_the_fields() -> None:
    m = mapping(event_type__values__up={"type": "plan_change",
                                       "fields": {"from_plan": {"const": "basic"}, "to_plan": {"const": "premium"}}})
    assert set(m.fields_for("up")) == {"from_plan", "to_plan"}
    with pytest.raises(MappingError, match=r"fields\.plan_change\.to_plan: required"):
        mapping(event_type__values__up={"type": "plan_change", "fields": {"from_plan": {"const": "basic"}}})


def test_yaml_file_and_its_errors(tmp_path) -> None:
    m = load_mapping(write_mapping(tmp_path / "good.yaml"))
    assert m.name == "good"
    (tmp_path / "bad.yaml").write_text("user_id: [unclosed")
    with pytest.raises(MappingError, match="bad.yaml: not valid YAML"):
        load_mapping(tmp_path / "bad.yaml")
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(MappingError, match="top level"):
        load_mapping(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("# only a comment\n")  # YAML None: said as such, not "got NoneType"
    with pytest.raises(MappingError, match=r"empty.yaml: the mapping is empty; see docs/import.md"):
        load_mapping(tmp_path / "empty.yaml")


def test_digest_ignores_name_and_thresholds_but_not_content() -> None:
    a = mapping()
    assert a.max_future_skew_hours == 24.0 and mapping(max_future_skew_hours=0).max_future_skew_hours == 0.0
    assert mapping(name="other", max_rejected_share=0.2, max_future_skew_hours=72).digest == a.digest
    assert mapping(fields__session__device={"const": "tv"}).digest != a.digest


def test_profile_lists_features_the_source_cannot_supply() -> None:
    p = source_profile(mapping())
    # payments without payment_failed: every logged charge succeeded, so the latest never failed
    assert {"payments_failed_30d", "last_payment_failed"} <= set(p["defaulted"])
    assert "payments_30d" not in p["defaulted"]
    with_failures = source_profile(mapping(event_type__values={"play": "session", "pay": "payment",
                                                               "quit": "cancel", "fail": "payment_failed"},
                                           fields__payment_failed={"amount": "amount", "reason": {"const": "card"}}))
    assert not {"payments_failed_30d", "last_payment_failed"} & set(with_failures["defaulted"])
    assert {"downgrades_30d", "upgrades_30d"} <= set(p["defaulted"])
    assert "sessions_7d" not in p["defaulted"] and "watch_per_day_7d" not in p["defaulted"]
    assert p["churn"]["definition"] == "cancel" and "tenure_days" in p["derived"]
    const_watch = source_profile(mapping(fields__session__watch_minutes={"const": 3}))
    assert "watch_per_day_7d" in const_watch["defaulted"] and "sessions_7d" not in const_watch["defaulted"]
    inactive = source_profile(mapping(event_type__values={"play": "session"},
                                      churn={"definition": "inactivity", "inactive_days": 14}))
    assert inactive["churn"] == {"definition": "inactivity", "inactive_days": 14,
                                 "note": inactive["churn"]["note"]}
    assert {"payments_30d", "tickets_7d", "last_payment_failed", "plan_tier"} <= set(inactive["defaulted"])


def test_values_tables_with_integer_and_yaml_boolean_keys(tmp_path) -> None:
    """`{1: premium, 0: basic, trial: standard}` raised a TypeError traceback (its keys
    could not be sorted for the digest); unquoted yes/no keys became "True"/"False" and
    every row was rejected as "not in values" without a hint."""
    mixed = mapping_dict(fields__payment__plan={"column": "plan", "values": {1: "premium", 0: "basic", "t": "standard"}})
    m = parse_mapping(mixed, "mixed")
    assert m.fields["payment"]["plan"].values == {"1": "premium", "0": "basic", "t": "standard"} and m.digest
    flags = mapping_dict(fields__payment__plan={"column": "plan", "values": {True: "premium", False: "basic"}})
    with pytest.raises(MappingError, match=r"fields.payment.plan.values: key True is a YAML boolean .*quote it"):
        parse_mapping(flags, "flags")
    (tmp_path / "m.yaml").write_text("""
user_id: uid
timestamp: {column: t, epoch_unit: s}
event_type: {column: kind, values: {play: session, off: cancel}, unmapped: drop}
fields: {session: {watch_minutes: {const: 1}, device: {const: web}}, cancel: {reason: {const: voluntary}}}
signup: {synthesize: first_event, plan: {const: basic}}
churn: {definition: cancel}
""")
    with pytest.raises(MappingError, match=r"event_type.values: key False is a YAML boolean .*'no'"):
        load_mapping(tmp_path / "m.yaml")
