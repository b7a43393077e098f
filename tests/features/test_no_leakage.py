"""No leakage: nothing after a cutoff changes any feature at that cutoff.

"After the cutoff" means events with ``ts > t``. They may be changed in any field (time
included, as long as it stays after ``t``), added anywhere from the point where the
replay passes ``t`` on, or removed from after that point. (An event with ``ts > t``
placed *before* an earlier-stamped event makes that one late - the stream would not have
had it at ``t`` either; see pipeline/features/replay.py.)
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import events as ev
from pipeline.features.registry import FEATURE_INDEX
from pipeline.features.replay import replay_partition
from pipeline.features.state import FeatureState
from pipeline.labels import build_snapshots
from pipeline.log import MemoryLog
from tests.features import reference as ref
from tests.features.strategies import DAY_US, HOUR_US, T0, event_logs, lateness


def _features_at(events: list[ev.Event], t: int, late: timedelta) -> dict[str, np.ndarray]:
    log = MemoryLog(num_partitions=1)
    log.append(0, [ev.encode(e) for e in events])
    out: dict[str, np.ndarray] = {}

    def read(cut: int, st: FeatureState) -> None:
        frame = st.read(cut)
        out.update({u: np.append(v, a) for u, v, a in zip(frame.users, frame.values, frame.active, strict=True)})

    replay_partition(log, 0, FeatureState(late), [t], read)
    return out


def _shift_after(e: ev.Event, t: int, extra_us: int, x: float) -> ev.Event:
    """Another event after ``t``: moved to ``t + 1 + extra`` and its payload changed."""
    ts = ref.EPOCH + timedelta(microseconds=t + 1 + extra_us)
    changes: dict[str, object] = {"ts": ts}
    if isinstance(e, ev.Session):
        changes["watch_minutes"] = round(x, 1)
    elif isinstance(e, ev.Payment | ev.PaymentFailed):
        changes["amount"] = round(x, 2)
    return msgspec.structs.replace(e, **changes)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_logs(min_size=2), late=lateness, cut_hours=st.integers(0, 45 * 24),
    extra=event_logs(max_size=15), data=st.data(),
)
def test_events_after_a_cutoff_change_no_feature_at_it(events, late, cut_hours, extra, data):
    t = ref.us(T0) + cut_hours * HOUR_US
    before = _features_at(events, t, late)

    passed = next((i for i, e in enumerate(events) if ref.us(e.ts) > t), len(events))
    draw = data.draw
    changed = [
        _shift_after(e, t, draw(st.integers(0, 40 * DAY_US)), draw(st.floats(0.5, 300)))
        if ref.us(e.ts) > t and draw(st.booleans()) else e
        for e in events
    ]
    # remove some later events (never the one that passes t), insert new ones after t
    keep = [i < passed + 1 or ref.us(e.ts) <= t or draw(st.booleans()) for i, e in enumerate(changed)]
    changed = [e for e, k in zip(changed, keep, strict=True) if k]
    for new in extra:
        pos = draw(st.integers(min(passed, len(changed)), len(changed)))
        changed.insert(pos, _shift_after(new, t, draw(st.integers(0, 40 * DAY_US)), 1.0))

    after = _features_at(changed, t, late)
    assert before.keys() == after.keys()
    for user, vec in before.items():
        assert np.array_equal(vec, after[user]), user


def test_event_exactly_at_the_cutoff_counts_one_microsecond_later_does_not():
    def session(i: int, us: int) -> ev.Session:
        return ev.Session(event_id=f"e{i}", user_id="a", ts=ref.EPOCH + timedelta(microseconds=us),
                          schema_version=1, watch_minutes=10.0, device="tv")

    t = ref.us(T0) + 10 * DAY_US
    got = _features_at([session(0, t - DAY_US), session(1, t), session(2, t + 1)], t, timedelta(hours=1))
    assert got["a"][FEATURE_INDEX["sessions_7d"]] == 2
    assert got["a"][FEATURE_INDEX["watch_today"]] == 10.0  # (t - 1 day, t]: only the one at t
    assert got["a"][FEATURE_INDEX["watch_lag_1d"]] == 10.0


def test_labels_look_only_at_the_horizon():
    def e(cls, i, days, **kw):
        return cls(event_id=f"e{i}", user_id=kw.pop("user"), ts=T0 + timedelta(days=days), schema_version=1, **kw)

    horizon = 10
    cutoff = ref.us(T0) + 20 * DAY_US
    base = [e(ev.Signup, 0, -1, user="a", plan="basic"), e(ev.Signup, 1, -1, user="b", plan="basic"),
            e(ev.Signup, 2, -1, user="c", plan="basic")]
    cancels = [
        e(ev.Cancel, 3, 30, user="a", reason="voluntary"),  # exactly t + H: positive
        e(ev.Cancel, 4, 30 + 1e-6 / 86400 * 2, user="b", reason="involuntary"),  # just after: negative
        e(ev.Session, 5, 45, user="c", watch_minutes=1.0, device="tv"),  # data end
    ]
    log = MemoryLog(num_partitions=1)
    log.append(0, [ev.encode(x) for x in base + cancels])
    snap = build_snapshots(log, horizon_days=horizon, cutoffs_us=[cutoff])
    assert dict(zip(snap.table.user_id, snap.table.label, strict=True)) == {"a": 1, "b": 0, "c": 0}
