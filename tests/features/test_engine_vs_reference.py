"""The fast engine equals the plain-loop reference, and batching never changes the state."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.features.registry import FEATURE_NAMES
from pipeline.features.state import FeatureState
from tests.features import reference as ref
from tests.features.strategies import DAY_US, USERS, event_logs, lateness

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lateness_us(td: timedelta) -> int:
    return td // timedelta(microseconds=1)


@HYP
@given(log=event_logs(), late=lateness, extra=st.sampled_from([0, 1, 3_600_000_000, DAY_US - 1, 9 * DAY_US]),
       to_midnight=st.booleans())
def test_engine_equals_reference(log, late, extra, to_midnight):
    state = FeatureState(lateness=late)
    result = state.update_events(log)
    kept, late_idx = ref.accept(log, _lateness_us(late))
    assert result.late.tolist() == late_idx
    assert result.applied == len(kept)
    assert result.touched == list(dict.fromkeys(e.user_id for _, e in kept))

    t = max(ref.us(e.ts) for _, e in kept) + extra
    if to_midnight:  # a cutoff-like read: the midnight closing the as-of day
        t = (ref.day(t) + 1) * DAY_US
    frame = state.read(t, list(USERS))
    assert not np.isnan(frame.values).any() and np.isfinite(frame.values).all()
    for i, user in enumerate(USERS):
        want, active = ref.features(kept, user, t)
        got = dict(zip(FEATURE_NAMES, frame.values[i].tolist(), strict=True))
        assert set(got) == set(want)
        for name in FEATURE_NAMES:
            assert np.isclose(got[name], want[name], rtol=1e-9, atol=1e-9), (user, name, got[name], want[name])
        assert bool(frame.active[i]) == active, user


@HYP
@given(log=event_logs(max_size=40), late=lateness, cuts=st.lists(st.integers(0, 40), max_size=8))
def test_update_many_at_once_equals_one_by_one(log, late, cuts):
    whole = FeatureState(lateness=late)
    r = whole.update_events(log)

    single = FeatureState(lateness=late)
    late_single = []
    for i, e in enumerate(log):
        late_single += [i] * len(single.update_events([e]).late)

    chunked = FeatureState(lateness=late)
    bounds = sorted({0, len(log), *[c for c in cuts if c < len(log)]})
    late_chunked = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        late_chunked += (chunked.update_events(log[lo:hi]).late + lo).tolist()

    assert r.late.tolist() == late_single == late_chunked
    assert whole.snapshot() == single.snapshot() == chunked.snapshot()


@HYP
@given(log=event_logs(max_size=40), late=lateness, k=st.integers(0, 40))
def test_snapshot_restore_mid_stream_is_invisible(log, late, k):
    k = min(k, len(log))
    straight = FeatureState(lateness=late)
    straight.update_events(log)

    first = FeatureState(lateness=late)
    first.update_events(log[:k])
    blob = first.snapshot()
    resumed = FeatureState.restore(blob)
    assert resumed.snapshot() == blob  # byte-identical round trip
    resumed.update_events(log[k:])
    assert resumed.snapshot() == straight.snapshot()
