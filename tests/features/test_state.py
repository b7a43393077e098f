"""FeatureState: lateness, defaults, read rules, ring reuse, growth and snapshots."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from pipeline import events as ev
from pipeline.errors import FeatureError
from pipeline.features import codec
from pipeline.features.registry import FEATURE_INDEX, FEATURE_NAMES, FEATURES
from pipeline.features.state import FeatureState
from pipeline.features.timebase import to_us
from tests.features import reference as ref

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def session(user: str, ts: datetime, minutes: float = 10.0) -> ev.Session:
    return ev.Session(event_id=f"s-{user}-{ts.isoformat()}", user_id=user, ts=ts, schema_version=1,
                      watch_minutes=minutes, device="tv")


def signup(user: str, ts: datetime, plan: str = "standard") -> ev.Signup:
    return ev.Signup(event_id=f"u-{user}", user_id=user, ts=ts, schema_version=1, plan=plan)


def vector(state: FeatureState, t: datetime, user: str) -> dict[str, float]:
    frame = state.read(t, [user])
    return dict(zip(FEATURE_NAMES, frame.values[0].tolist(), strict=True))


def test_lateness_boundary_is_inclusive():
    st = FeatureState(lateness=timedelta(hours=6))
    wm = T0 + timedelta(hours=12)
    r = st.update_events([
        session("a", wm),
        session("a", wm - timedelta(hours=6)),  # exactly at the bound: applied
        session("a", wm - timedelta(hours=6, microseconds=1)),  # 1 us older: late
    ])
    assert r.late.tolist() == [2] and r.applied == 2 and st.late_total == 1
    assert vector(st, wm, "a")["sessions_7d"] == 2


def test_late_event_within_lateness_goes_to_its_own_day():
    st = FeatureState(lateness=timedelta(hours=24))
    st.update_events([session("a", T0 + timedelta(hours=20), 5.0), session("a", T0 - timedelta(hours=2), 7.0)])
    v = vector(st, T0 + timedelta(hours=20), "a")
    assert v["watch_today"] == 5.0 and v["watch_lag_1d"] == 7.0


def test_brand_new_user_has_documented_defaults():
    st = FeatureState()
    st.update_events([signup("n", T0, "premium")])
    t = T0 + timedelta(hours=12)
    v = vector(st, t, "n")
    for f in FEATURES:
        if f.name in ("tenure_days", "days_since_last_session"):
            assert v[f.name] == pytest.approx(0.5)
        elif f.name == "plan_tier":
            assert v[f.name] == 2.0
        elif f.name == "plan_price":
            assert v[f.name] == 19.99
        else:
            assert v[f.name] == f.default == 0.0, f.name
    assert st.read(t, ["n"]).active.tolist() == [True]


def test_unknown_user_reads_defaults_and_inactive():
    st = FeatureState()
    st.update_events([signup("a", T0)])
    frame = st.read(T0, ["zzz", "a"])
    assert frame.values[0].tolist() == [f.default for f in FEATURES]
    assert frame.active.tolist() == [False, True]
    assert len(st) == 1  # reading does not create users


def test_reading_before_the_watermark_is_refused():
    st = FeatureState()
    st.update_events([session("a", T0)])
    with pytest.raises(FeatureError, match="watermark"):
        st.read(T0 - timedelta(microseconds=1))
    st.read(T0)  # at the watermark is fine


def test_averages_use_observed_days_since_signup():
    st = FeatureState()
    events = [signup("a", T0 + timedelta(hours=1))]
    events += [session("a", T0 + timedelta(days=d, hours=3), 30.0) for d in range(3)]
    st.update_events(events)
    v = vector(st, T0 + timedelta(days=3), "a")  # midnight closing the 3rd day
    assert v["sessions_7d"] == 3 and v["sessions_per_day_7d"] == 1.0 and v["watch_per_day_30d"] == 30.0
    assert v["watch_slope_14d"] == 0.0 and v["active_days_30d"] == 3


def test_returning_user_after_long_gap_sees_no_stale_buckets():
    st = FeatureState()
    old = [session("a", T0 + timedelta(days=d), 50.0) for d in range(40)]
    back = T0 + timedelta(days=240, hours=5)
    st.update_events([signup("a", T0), *old, session("a", back, 1.0)])
    v = vector(st, back, "a")
    assert v["sessions_30d"] == 1 and v["watch_per_session_30d"] == 1.0 and v["watch_lag_1d"] == 0.0


@pytest.mark.parametrize("when", [datetime(1969, 12, 30, 23, tzinfo=UTC), datetime(2300, 1, 1, 0, 0, 1, tzinfo=UTC)])
def test_times_far_from_now_match_the_reference(when):
    log = [signup("a", when), session("a", when + timedelta(hours=1), 12.5), session("a", when + timedelta(days=1))]
    st = FeatureState()
    st.update_events(log)
    t = to_us(when + timedelta(days=2))
    kept, _ = ref.accept(log, 0)
    want, _ = ref.features(kept, "a", t)
    got = st.read(t, ["a"]).values[0]
    assert np.allclose(got, [want[n] for n in FEATURE_NAMES])


def test_growth_keeps_state_and_matches_a_presized_state():
    events = [session(f"u{i}", T0 + timedelta(seconds=i)) for i in range(3000)]
    small, big = FeatureState(capacity=16), FeatureState(capacity=5000)
    for lo in range(0, 3000, 700):
        small.update_events(events[lo : lo + 700])
    big.update_events(events)
    assert small.snapshot() == big.snapshot()
    assert small.read(T0 + timedelta(hours=1), ["u0", "u2999"]).values[:, FEATURE_INDEX["sessions_7d"]].tolist() == [1, 1]


def test_snapshot_round_trip_and_corruption_is_refused():
    st = FeatureState(lateness=timedelta(hours=3))
    st.update_events([signup("a", T0), session("a", T0 + timedelta(hours=1)), session("b", T0 - timedelta(hours=9))])
    blob = st.snapshot()
    back = FeatureState.restore(blob)
    assert back.snapshot() == blob
    assert back.lateness == timedelta(hours=3) and back.late_total == 1 and back.user_ids == ["a", "b"]
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    for bad in (bytes(flipped), blob[:-7], b"garbage" * 10, b""):
        with pytest.raises(FeatureError):
            FeatureState.restore(bad)


def _format_1(blob: bytes) -> bytes:
    """The same state as a format 1 snapshot (arrays stored raw), as checkpoints written
    before format 2 hold it."""
    hlen = int.from_bytes(blob[len(codec.MAGIC) : len(codec.MAGIC) + 8], "little")
    header = msgspec.msgpack.decode(blob[len(codec.MAGIC) + 8 : len(codec.MAGIC) + 8 + hlen])
    _, users, arrays = codec.load(blob, {a[0]: np.dtype(a[1]).newbyteorder("=").name for a in header["arrays"]},
                                  header["feature_set"])  # fmt: skip
    header["format"] = 1
    header["arrays"] = [a[:3] for a in header["arrays"]]
    head = msgspec.msgpack.encode(header)
    body = codec.MAGIC + len(head).to_bytes(8, "little") + head
    body += b"".join(np.ascontiguousarray(arrays[a[0]], dtype=a[1]).tobytes() for a in header["arrays"])
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_snapshots_are_compressed_and_format_1_snapshots_still_restore():
    st = FeatureState()
    st.update_events([signup(f"u{i}", T0) for i in range(2000)]
                     + [session(f"u{i}", T0 + timedelta(hours=1)) for i in range(0, 2000, 3)])  # fmt: skip
    blob = st.snapshot()
    old = _format_1(blob)
    assert len(blob) * 4 < len(old)  # mostly empty day buckets: ~890 bytes a user raw
    back = FeatureState.restore(old)
    assert back.snapshot() == blob  # the same state; written again, in format 2
    t = T0 + timedelta(hours=2)
    assert np.array_equal(back.read(t).values, st.read(t).values) and back.user_ids == st.user_ids


def _with_crc(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_a_snapshot_whose_compressed_array_is_damaged_is_refused():
    """Every byte of an array's LZ4 frame flipped, the outer CRC recomputed (as a bug that
    rewrote the file would): pyarrow's frames carry no content checksum, and a frame that
    decodes short is not an error there; the crc32 of the raw bytes refuses each one."""
    st = FeatureState()
    st.update_events([signup(f"u{i}", T0) for i in range(50)] + [session("u3", T0 + timedelta(hours=1))])
    good = st.snapshot()
    hlen = int.from_bytes(good[len(codec.MAGIC) : len(codec.MAGIC) + 8], "little")
    header = msgspec.msgpack.decode(good[len(codec.MAGIC) + 8 : len(codec.MAGIC) + 8 + hlen])
    zsize = header["arrays"][-1][3]
    assert zsize > 0 and header["format"] == 2
    frame = range(len(good) - 4 - zsize, len(good) - 4)  # the last array's frame
    for at in frame:
        damaged = bytearray(good[:-4])
        damaged[at] ^= 0xFF
        with pytest.raises(FeatureError, match="corrupt"):
            FeatureState.restore(_with_crc(bytes(damaged)))


@pytest.mark.parametrize("layout", [["x", "<i4", [3], 1, 0], ["x", "<i4", [1 << 40, 4], 0, 0], ["x", "<i4", 7, 0, 0],
                                    ["x", "<i4", [-1], 0, 0], ["x", "<i4", [0], 5, 0]])  # fmt: skip
def test_a_snapshot_with_a_malformed_array_layout_is_refused_as_corrupt(layout):
    st = FeatureState()
    good = st.snapshot()
    hlen = int.from_bytes(good[len(codec.MAGIC) : len(codec.MAGIC) + 8], "little")
    header = msgspec.msgpack.decode(good[len(codec.MAGIC) + 8 : len(codec.MAGIC) + 8 + hlen])
    layout[0], layout[1] = header["arrays"][0][0], header["arrays"][0][1]
    header["arrays"][0] = layout
    head = msgspec.msgpack.encode(header)
    bad = _with_crc(codec.MAGIC + len(head).to_bytes(8, "little") + head)
    with pytest.raises(FeatureError, match="corrupt"):
        FeatureState.restore(bad)


def test_empty_state_snapshot_round_trips():
    blob = FeatureState().snapshot()
    assert FeatureState.restore(blob).snapshot() == blob


@pytest.mark.parametrize("bad", [timedelta(hours=-1), timedelta(days=31)])
def test_lateness_out_of_range_is_refused(bad):
    with pytest.raises(FeatureError, match="lateness"):
        FeatureState(lateness=bad)


def test_cancel_ends_the_subscription_and_resignup_restarts_it():
    st = FeatureState()
    cancel = ev.Cancel(event_id="c", user_id="a", ts=T0 + timedelta(days=1), schema_version=1, reason="voluntary")
    st.update_events([signup("a", T0), cancel])
    assert st.read(T0 + timedelta(days=1)).active.tolist() == [False] and st.active_users() == []
    st.update_events([signup("a", T0 + timedelta(days=2))])
    assert st.active_users() == ["a"]
    assert vector(st, T0 + timedelta(days=2), "a")["tenure_days"] == 0.0


def test_read_by_slots_equals_read_by_ids_and_active_slots_are_the_active_rows():
    st = FeatureState()
    events = [signup(f"u{i}", T0) for i in range(0, 40, 2)]
    events += [session(f"u{i}", T0 + timedelta(minutes=i), minutes=float(i)) for i in range(40)]
    r = st.update_events(events)
    t = T0 + timedelta(hours=2)
    by_ids = st.read(t, r.touched)
    by_slots = st.read(t, r.touched, slots=r.touched_slots)
    assert by_slots.users == by_ids.users and np.array_equal(by_slots.values, by_ids.values)
    assert np.array_equal(by_slots.active, by_ids.active)
    every = st.read(t)
    assert st.active_slots().tolist() == np.flatnonzero(every.active).tolist()
    assert st.active_users() == [u for u, a in zip(every.users, every.active, strict=True) if a]
    with pytest.raises(FeatureError, match="2 users but 1 slots"):
        st.read(t, ["u0", "u1"], slots=r.touched_slots[:1])


def test_a_snapshot_of_a_format_this_code_does_not_read_says_so():
    good = FeatureState().snapshot()
    hlen = int.from_bytes(good[len(codec.MAGIC) : len(codec.MAGIC) + 8], "little")
    header = msgspec.msgpack.decode(good[len(codec.MAGIC) + 8 : len(codec.MAGIC) + 8 + hlen])
    header["format"] = 9
    head = msgspec.msgpack.encode(header)
    with pytest.raises(FeatureError, match=r"format 9 is not one this code reads \(1, 2\).*replaying the log"):
        FeatureState.restore(_with_crc(codec.MAGIC + len(head).to_bytes(8, "little") + head))


def test_touched_users_are_each_listed_once_in_first_appearance_order_across_updates() -> None:
    # kernels.first_touched replaced pd.unique(slot[accepted]); its per-slot marks carry over
    # from update to update and across the state's growth, and must never hide a user
    import pandas as pd

    from pipeline.features import kernels

    rng = np.random.default_rng(3)
    seen = np.zeros(64, np.int64)
    for mark in range(1, 300):
        slot = rng.integers(0, 64, int(rng.integers(0, 40)))
        accepted = rng.random(len(slot)) < 0.8
        assert np.array_equal(kernels.first_touched(slot, accepted, seen, mark), pd.unique(slot[accepted]))

    st = FeatureState(capacity=16)  # grows several times below
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    for day in range(3):
        ids = [f"u{(day * 7 + i) % 40}" for i in range(60)]
        events = [ev.Session(event_id=f"e{day}-{i}", user_id=u, ts=t0 + timedelta(days=day, seconds=i),
                             schema_version=1, watch_minutes=1.0, device="tv") for i, u in enumerate(ids)]  # fmt: skip
        assert st.update_events(events).touched == list(dict.fromkeys(ids))
