"""Decoding into columns, and the partitioned engine's stream helper with dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from pipeline import events as ev
from pipeline.clock import FakeClock
from pipeline.errors import EventDecodeError, FeatureError, LateEventError
from pipeline.features.columns import (
    CANCEL,
    PAYMENT,
    PLAN_CHANGE,
    SESSION,
    SIGNUP,
    decode_columns,
    from_events,
)
from pipeline.features.engine import FeatureEngine
from pipeline.log import DeadLetters, MemoryLog, parse_dead_letter

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _e(cls, i: int, hours: float = 0.0, **kw) -> ev.Event:
    return cls(event_id=f"e{i}", user_id=kw.pop("user", "u1"), ts=T0 + timedelta(hours=hours), schema_version=1, **kw)


def test_columns_carry_each_type_fields():
    events = [
        _e(ev.Signup, 0, plan="premium"),
        _e(ev.Session, 1, watch_minutes=12.5, device="tv"),
        _e(ev.Payment, 2, amount=19.99, plan="premium"),
        _e(ev.PlanChange, 3, from_plan="premium", to_plan="basic"),
        _e(ev.Cancel, 4, reason="involuntary"),
    ]
    c = from_events(events)
    assert c.code.tolist() == [SIGNUP, SESSION, PAYMENT, PLAN_CHANGE, CANCEL]
    assert c.num.tolist() == [0.0, 12.5, 19.99, 0.0, 0.0]
    assert c.cat.tolist() == [2, -1, 2, 2, 1] and c.cat2.tolist() == [-1, -1, -1, 0, -1]
    assert c.ts[0] == 1_767_225_600_000_000 and len(c) == 5


def test_columns_of_an_interleaved_mix_of_every_type_match_event_by_event():
    """Fields are filled one type at a time; each lands on its own event's row."""
    plans = list(ev.PLANS)
    rng = np.random.default_rng(7)
    makers = [
        lambda i: _e(ev.Signup, i, plan=plans[i % 3]),
        lambda i: _e(ev.Session, i, watch_minutes=float(i), device="tv"),
        lambda i: _e(ev.Payment, i, amount=i / 4, plan=plans[(i + 1) % 3]),
        lambda i: _e(ev.PaymentFailed, i, amount=i / 8, reason="card_declined"),
        lambda i: _e(ev.PlanChange, i, from_plan=plans[i % 3], to_plan=plans[(i + 2) % 3]),
        lambda i: _e(ev.SupportTicket, i, category="billing"),
        lambda i: _e(ev.Cancel, i, reason=("voluntary", "involuntary")[i % 2]),
        lambda i: _e(ev.Activity, i, action=("view", "buy", "other")[i % 3], value=None if i % 2 else i / 2),
    ]
    events = [makers[int(k)](i) for i, k in enumerate(rng.integers(0, len(makers), 400))]
    vocab = {"view": 0, "buy": 1}  # "other" is undeclared: -1

    def one(e):  # (num, cat, cat2) of one event, straight from its fields
        plan = {p: j for j, p in enumerate(plans)}
        match e:
            case ev.Signup():
                return 0.0, plan[e.plan], -1
            case ev.Session():
                return e.watch_minutes, -1, -1
            case ev.Payment():
                return e.amount, plan[e.plan], -1
            case ev.PaymentFailed():
                return e.amount, -1, -1
            case ev.PlanChange():
                return 0.0, plan[e.from_plan], plan[e.to_plan]
            case ev.Cancel():
                return 0.0, {"voluntary": 0, "involuntary": 1}[e.reason], -1
            case ev.Activity():
                return 0.0 if e.value is None else e.value, vocab.get(e.action, -1), -1
        return 0.0, -1, -1

    from pipeline.features.columns import _columns

    c = _columns(events, vocab)
    assert list(zip(c.num.tolist(), c.cat.tolist(), c.cat2.tolist(), strict=True)) == [one(e) for e in events]
    assert c.user_ids == [e.user_id for e in events] and c.event_ids == [e.event_id for e in events]


def test_decode_columns_separates_invalid_records():
    good = [ev.encode(_e(ev.Session, i, i, watch_minutes=1.0, device="tv")) for i in range(3)]
    values = [good[0], b"{not json", good[1], b'{"type":"session"}', good[2]]
    d = decode_columns(values)
    assert d.valid_index.tolist() == [0, 2, 4] and len(d.columns) == 3
    assert [i for i, _ in d.invalid] == [1, 3]
    assert all(isinstance(e, EventDecodeError) for _, e in d.invalid)
    assert decode_columns([]).columns.ts.dtype == np.int64


def test_engine_process_dead_letters_invalid_and_late_with_offsets():
    dlq_log = MemoryLog("events.dlq", num_partitions=2)
    dlq = DeadLetters(dlq_log, FakeClock(T0), "events")
    engine = FeatureEngine(num_partitions=2, lateness=timedelta(hours=1))
    values = [
        ev.encode(_e(ev.Session, 0, 10.0, watch_minutes=3.0, device="tv")),
        b"nonsense",
        ev.encode(_e(ev.Session, 1, 8.0, watch_minutes=3.0, device="tv")),  # 2 h behind: late
        ev.encode(_e(ev.Session, 2, 9.5, user="u2", watch_minutes=4.0, device="tv")),
    ]
    out = engine.process(1, values, first_offset=100, dlq=dlq)
    assert out.applied == 2 and out.late == [102] and [o for o, _ in out.invalid] == [101]
    assert out.touched == ["u1", "u2"] and out.watermark == T0 + timedelta(hours=10)
    letters = [parse_dead_letter(r.value) for r in dlq_log.fetch(1, 0)]
    assert [(d.source_offset, d.field) for d in letters] == [(101, "$"), (102, "$.ts")]
    assert "late event" in letters[1].reason and letters[1].original() == values[2]
    frame = engine.read(1, out.watermark, out.touched)
    assert frame.values[:, 0].tolist() == [1.0, 1.0]


def test_engine_restore_checks_lateness_and_partition():
    engine = FeatureEngine(num_partitions=2, lateness=timedelta(hours=1))
    engine.process(0, [ev.encode(_e(ev.Session, 0, watch_minutes=1.0, device="tv"))])
    blob = engine.snapshot(0)
    other = FeatureEngine(num_partitions=2, lateness=timedelta(hours=2))
    with pytest.raises(FeatureError, match="lateness"):
        other.restore(0, blob)
    same = FeatureEngine(num_partitions=2, lateness=timedelta(hours=1))
    same.restore(1, blob)
    assert same.snapshot(1) == blob and same.partitions == [1]
    with pytest.raises(FeatureError, match="out of range"):
        same.state(2)


def test_late_event_error_is_a_dead_letter_reason():
    e = LateEventError("late event: x")
    assert e.reason == "late event: x" and e.field == "$.ts" and str(e) == "late event: x"


def test_event_times_become_exact_microseconds_on_every_path():
    """``_micros`` reads MessagePack's timestamps back (32-bit: whole seconds up to 2106;
    64-bit: with a fraction, up to 2514; 96-bit: anything else, before 1970 included) and
    reads naive datetimes as UTC, one by one. Every path must equal the integer offset,
    to the microsecond, at and around each form's boundary, in any mix in one batch."""
    import random
    from datetime import timezone

    from pipeline.features.columns import _micros

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    us = timedelta(microseconds=1)
    rng = random.Random(5)
    lo, hi = (datetime(1, 1, 1, tzinfo=UTC) - epoch) // us, (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - epoch) // us
    anywhere = [epoch + us * rng.randrange(lo, hi + 1) for _ in range(20_000)]
    whole = [epoch + timedelta(seconds=rng.randrange(0, 2**32)) for _ in range(2_000)]  # 32-bit form
    edges = [epoch + us * d for d in (0, 1, -1, 999_999, -999_999, -1_000_000)]
    edges += [epoch + timedelta(seconds=s) + us * f for s in (2**32 - 1, 2**32, 2**34 - 1, 2**34) for f in (0, 1)]
    edges += [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
              datetime(2262, 4, 12, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, 0, 123_457, tzinfo=timezone(timedelta(hours=5, minutes=30)))]  # fmt: skip
    naive = [datetime(2026, 1, 1, 12), datetime(1, 1, 1), datetime(9999, 1, 1)]
    batches = [anywhere, whole, edges, edges + anywhere[:20], whole[:15], whole[:16], whole[:65_536],
               [edges[0]], naive, naive + edges, edges + naive]  # fmt: skip
    for stamps in batches:
        want = np.array([(t.replace(tzinfo=t.tzinfo or UTC) - epoch) // us for t in stamps], np.int64)
        np.testing.assert_array_equal(_micros(stamps), want)
    assert _micros([]).dtype == np.int64 and len(_micros([])) == 0
    # what decoding gives the engine: any offset, converted to UTC by the contract
    e = ev.decode(b'{"type":"session","event_id":"e","user_id":"u","ts":"2026-03-29T01:30:00.123457+05:30",'
                  b'"schema_version":1,"watch_minutes":1.0,"device":"tv"}')  # fmt: skip
    assert _micros([e.ts])[0] == (datetime(2026, 3, 28, 20, 0, 0, 123_457, tzinfo=UTC) - epoch) // timedelta(microseconds=1)


def test_the_timestamp_reader_refuses_what_it_does_not_know():
    """The compiled reader says False (and ``_micros`` falls back) on a count mismatch,
    a truncated buffer, another element type, trailing bytes or a sub-microsecond part."""
    import msgspec

    from pipeline.features.columns import _unpack_timestamps

    def read(value, n):
        out = np.empty(n, np.int64)
        return _unpack_timestamps(np.frombuffer(value, np.uint8), out), out

    t = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    packed = msgspec.msgpack.encode([t, t])
    ok, out = read(packed, 2)
    assert ok and out.tolist() == [(t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)] * 2
    assert not read(packed, 3)[0] and not read(packed, 1)[0]
    assert not read(packed[:-1], 2)[0] and not read(packed + b"\x00", 2)[0]
    assert not read(msgspec.msgpack.encode([t, "2026-01-01"]), 2)[0]
    assert not read(msgspec.msgpack.encode([t, 5]), 2)[0]
    nanos = msgspec.msgpack.encode([msgspec.msgpack.Ext(-1, b"\x00\x00\x00\x04" + b"\x00\x00\x00\x01")])
    assert not read(nanos, 1)[0]  # 1 ns past the second: not a datetime's value
