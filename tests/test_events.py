from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import events as ev
from pipeline.errors import EventDecodeError

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
money = st.floats(min_value=0, max_value=1_000_000, allow_nan=False)
minutes = st.floats(min_value=0, max_value=1440, allow_nan=False)
labels = st.text(min_size=1, max_size=64)
plans = st.sampled_from(ev.PLANS)
common = {"event_id": ids, "user_id": ids, "ts": times, "schema_version": st.just(1)}
plan_pairs = st.tuples(plans, plans).filter(lambda p: p[0] != p[1])

valid_events = st.one_of(
    st.builds(ev.Signup, plan=plans, **common),
    st.builds(ev.Session, watch_minutes=minutes, device=labels, **common),
    st.builds(ev.Payment, amount=money, plan=plans, **common),
    st.builds(ev.PaymentFailed, amount=money, reason=labels, **common),
    plan_pairs.flatmap(lambda p: st.builds(ev.PlanChange, from_plan=st.just(p[0]), to_plan=st.just(p[1]), **common)),
    st.builds(ev.SupportTicket, category=labels, **common),
    st.builds(ev.Cancel, reason=st.sampled_from(["voluntary", "involuntary"]), **common),
    st.builds(ev.Activity, action=st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True),
              value=st.none() | st.floats(-1e9, 1e9, allow_nan=False), **common),
)


def _base(**fields) -> dict:
    d = {"type": "session", "event_id": "e1", "user_id": "u1", "ts": "2026-03-01T10:00:00Z",
         "schema_version": 1, "watch_minutes": 12.5, "device": "tv"}
    d.update(fields)
    return {k: v for k, v in d.items() if v is not _MISSING}


_MISSING = object()


def _raw(**fields) -> bytes:
    return msgspec.json.encode(_base(**fields))


@given(valid_events)
@settings(max_examples=300)
def test_roundtrip_every_valid_event(event):
    assert ev.decode(ev.encode(event)) == event


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_decode_or_raise_documented_error(data):
    try:
        out = ev.decode(data)
    except EventDecodeError as exc:
        assert exc.field.startswith("$")
    else:
        assert type(out) in ev.EVENT_TYPES.values()


@given(st.dictionaries(st.sampled_from(["type", "event_id", "user_id", "ts", "schema_version",
                                        "watch_minutes", "device", "amount", "plan", "x"]),
                       st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=30),
                                 st.sampled_from(list(ev.EVENT_TYPES)), st.booleans())))
@settings(max_examples=500)
def test_arbitrary_objects_decode_or_raise_documented_error(obj):
    try:
        out = ev.decode(msgspec.json.encode(obj))
    except EventDecodeError as exc:
        assert exc.field.startswith("$") and str(exc)  # the error names the bad field
    else:
        assert type(out) in ev.EVENT_TYPES.values()


@pytest.mark.parametrize(
    ("fields", "path", "needle"),
    [
        ({"ts": "2026-03-01T10:00:00"}, "$.ts", "timezone"),
        ({"watch_minutes": -1}, "$.watch_minutes", ">= 0"),
        ({"watch_minutes": "12"}, "$.watch_minutes", "Expected `float`"),
        ({"watch_minutes": True}, "$.watch_minutes", "Expected `float`"),
        ({"device": _MISSING}, "$.device", "missing required field"),
        ({"type": "teleport"}, "$.type", "unknown event type"),
        ({"extra": 1}, "$.extra", "unknown field"),
        ({"schema_version": 2}, "$.schema_version", "<= 1"),
        ({"user_id": ""}, "$.user_id", "length >= 1"),
    ],
)
def test_invalid_fields_name_field_and_value(fields, path, needle):
    with pytest.raises(EventDecodeError) as info:
        ev.decode(_raw(**fields))
    assert info.value.field == path
    assert needle in str(info.value)
    given_value = next(iter(fields.values()))
    if given_value is not _MISSING:
        assert info.value.value == given_value


def test_overflowing_number_rejected():
    raw = _raw().replace(b'"watch_minutes":12.5', b'"watch_minutes":1e999')
    with pytest.raises(EventDecodeError, match="out of range") as info:
        ev.decode(raw)
    assert info.value.field == "$.watch_minutes"


def test_negative_amount_rejected():
    raw = msgspec.json.encode({"type": "payment", "event_id": "e", "user_id": "u",
                               "ts": "2026-03-01T10:00:00Z", "schema_version": 1, "amount": -5, "plan": "basic"})
    with pytest.raises(EventDecodeError, match=r"\$\.amount") as info:
        ev.decode(raw)
    assert info.value.value == -5


def test_plan_change_to_same_plan_rejected():
    raw = msgspec.json.encode({"type": "plan_change", "event_id": "e", "user_id": "u",
                               "ts": "2026-03-01T10:00:00Z", "schema_version": 1,
                               "from_plan": "basic", "to_plan": "basic"})
    with pytest.raises(EventDecodeError) as info:
        ev.decode(raw)
    assert info.value.field == "$.to_plan"


def test_malformed_json_is_typed_error_not_crash():
    for raw in (b"", b"{", b"null", b"[]", b"\xff\xfe", b'{"type": 1}'):
        assert isinstance(ev.try_decode(raw), EventDecodeError)


def test_offset_timestamps_are_normalised_to_utc():
    e = ev.decode(_raw(ts="2026-03-01T12:00:00+02:00"))
    assert e.ts == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert e.ts.tzinfo is UTC
    assert ev.Session(event_id="e", user_id="u", ts=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
                      schema_version=1, watch_minutes=1, device="tv").ts.tzinfo is UTC


def test_encode_lines_and_event_time():
    a = ev.decode(_raw())
    b = ev.decode(_raw(event_id="e2", ts="2026-03-02T00:00:00Z"))
    lines = ev.encode_lines([a, b]).splitlines()
    assert [ev.decode(x) for x in lines] == [a, b]
    assert ev.event_time(lines[1]) == datetime(2026, 3, 2, tzinfo=UTC)
    assert ev.event_time(b"garbage") is None


def test_field_registry_is_complete():
    assert set(ev.EVENT_TYPES) == {"signup", "session", "payment", "payment_failed",
                                   "plan_change", "support_ticket", "cancel", "activity"}
    assert ev.EVENT_FIELDS["activity"] == ("action", "value") and ev.OPTIONAL_FIELDS["activity"] == {"value"}
    assert ev.EVENT_FIELDS["session"] == ("watch_minutes", "device")
    assert ev.to_builtins(ev.decode(_raw()))["type"] == "session"


def _activity(**fields) -> bytes:
    d = {"type": "activity", "event_id": "e1", "user_id": "u1", "ts": "2026-03-01T10:00:00Z",
         "schema_version": 1, "action": "export_report"} | fields
    return msgspec.json.encode({k: v for k, v in d.items() if v is not _MISSING})


def test_activity_carries_a_validated_action_and_an_optional_value():
    e = ev.decode(_activity())
    assert isinstance(e, ev.Activity) and e.action == "export_report" and e.value is None
    assert ev.decode(_activity(value=3.5)).value == 3.5
    assert ev.decode(ev.encode(e)) == e
    for bad, field in [("", "$.action"), ("Export Report", "$.action"), ("a" * 41, "$.action"),
                       ("1st", "$.action"), ("drop;table", "$.action")]:
        with pytest.raises(EventDecodeError) as info:
            ev.decode(_activity(action=bad))
        assert info.value.field == field and info.value.value == bad
    for value in ("3", 1e10, True):
        with pytest.raises(EventDecodeError, match=r"\$\.value"):
            ev.decode(_activity(value=value))
    with pytest.raises(EventDecodeError, match="action"):
        ev.decode(_activity(action=_MISSING))
    assert ev.valid_action("cart_add") and not ev.valid_action("Cart") and not ev.valid_action(3)
