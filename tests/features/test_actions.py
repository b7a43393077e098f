"""Per-action features: the engine equals the plain-loop reference, batching and snapshots
are invisible, the stream path equals the batch replay, undeclared actions are dead letters."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import events as ev
from pipeline.errors import FeatureError
from pipeline.features.columns import ACTIVITY, decode_columns
from pipeline.features.engine import FeatureEngine
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.features.replay import replay_partition
from pipeline.features.spec import DEFAULT_SPEC, Action, FeatureSpec
from pipeline.features.state import FeatureState
from pipeline.labels import build_snapshots
from pipeline.log import MemoryLog
from tests.features import reference as ref
from tests.features.strategies import ACTIONS, DAY_US, T0, USERS, event_logs, lateness
from tests.features.test_snapshots_vs_reference import N_PARTITIONS, _log_of

HYP = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPEC = FeatureSpec.from_vocabulary([ACTIONS[0], Action(ACTIONS[1], -1), Action(ACTIONS[2], 1)])


def _lateness_us(td: timedelta) -> int:
    return td // timedelta(microseconds=1)


@HYP
@given(log=event_logs(activity=True), late=lateness, extra=st.sampled_from([0, 1, DAY_US - 1, 9 * DAY_US]),
       to_midnight=st.booleans())
def test_action_features_equal_reference(log, late, extra, to_midnight):
    state = FeatureState(lateness=late, spec=SPEC)
    result = state.update_events(log)
    kept, late_idx = ref.accept(log, _lateness_us(late))
    assert result.late.tolist() == late_idx
    t = max(ref.us(e.ts) for _, e in kept) + extra
    if to_midnight:
        t = (ref.day(t) + 1) * DAY_US
    frame = state.read(t, [*USERS, "nobody"])
    assert frame.columns == SPEC.engine_columns and np.isfinite(frame.values).all()
    for i, user in enumerate(USERS):
        want, active = ref.features(kept, user, t)
        want |= ref.action_features(kept, user, t, ACTIONS)
        got = dict(zip(frame.columns, frame.values[i].tolist(), strict=True))
        assert set(got) == set(want)
        for name, value in want.items():
            assert np.isclose(got[name], value, rtol=1e-9, atol=1e-9), (user, name, got[name], value)
        assert bool(frame.active[i]) == active
    assert frame.values[-1, len(FEATURE_NAMES):].tolist() == [0.0] * len(SPEC.action_columns)  # unknown user


@HYP
@given(log=event_logs(max_size=40, activity=True), late=lateness, cuts=st.lists(st.integers(0, 40), max_size=8))
def test_action_update_many_at_once_equals_one_by_one(log, late, cuts):
    whole = FeatureState(lateness=late, spec=SPEC)
    r = whole.update_events(log)
    single = FeatureState(lateness=late, spec=SPEC)
    late_single = []
    for i, e in enumerate(log):
        late_single += [i] * len(single.update_events([e]).late)
    chunked = FeatureState(lateness=late, spec=SPEC)
    bounds = sorted({0, len(log), *[c for c in cuts if c < len(log)]})
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        chunked.update_events(log[lo:hi])
    assert r.late.tolist() == late_single
    assert whole.snapshot() == single.snapshot() == chunked.snapshot()


@HYP
@given(log=event_logs(max_size=40, activity=True), late=lateness, k=st.integers(0, 40))
def test_action_snapshot_restore_mid_stream_is_invisible(log, late, k):
    k = min(k, len(log))
    straight = FeatureState(lateness=late, spec=SPEC)
    straight.update_events(log)
    first = FeatureState(lateness=late, spec=SPEC)
    first.update_events(log[:k])
    blob = first.snapshot()
    resumed = FeatureState.restore(blob, SPEC)
    assert resumed.snapshot() == blob
    resumed.update_events(log[k:])
    assert resumed.snapshot() == straight.snapshot()


def test_snapshot_of_another_spec_is_refused_with_the_remedy():
    st_ = FeatureState(spec=SPEC)
    blob = st_.snapshot()
    with pytest.raises(FeatureError, match=f"feature set {SPEC.version}.*replaying the log"):
        FeatureState.restore(blob)  # the simulator's default spec
    other = FeatureSpec.from_vocabulary(ACTIONS[:2])
    with pytest.raises(FeatureError, match="rebuild the state by replaying the log"):
        FeatureState.restore(blob, other)


def test_default_spec_keeps_the_simulator_features_and_snapshot_layout():
    assert DEFAULT_SPEC.names == FEATURE_NAMES and DEFAULT_SPEC.version == FEATURE_SET_VERSION
    st_ = FeatureState()
    assert st_.columns == FEATURE_NAMES
    assert not any(k.startswith("act_") for k in st_._arrays)
    assert FeatureState.restore(st_.snapshot()).snapshot() == st_.snapshot()


def _activity(i: int, user: str, action: str, day: int) -> bytes:
    return ev.encode(ev.Activity(event_id=f"e{i}", user_id=user, ts=T0 + timedelta(days=day, hours=1),
                                 schema_version=1, action=action, value=None))


def test_undeclared_action_is_a_dead_letter_not_a_feature():
    values = [_activity(0, "u", "view", 0), _activity(1, "u", "teleport", 0), _activity(2, "u", "buy", 1)]
    d = decode_columns(values, SPEC.action_index)
    assert d.valid_index.tolist() == [0, 2] and [i for i, _ in d.invalid] == [1]
    err = d.invalid[0][1]
    assert err.field == "$.action" and err.value == "teleport" and "declared vocabulary" in err.reason
    assert d.columns.code.tolist() == [ACTIVITY, ACTIVITY] and d.columns.cat.tolist() == [0, 2]
    # the simulator's topic declares no action: any activity event is a dead letter there
    assert len(decode_columns(values, DEFAULT_SPEC.action_index).invalid) == 3
    with pytest.raises(FeatureError, match="declared vocabulary"):
        FeatureState(spec=SPEC).update_events([ev.decode(values[1])])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(min_size=5, max_size=80, activity=True), sizes=st.lists(st.integers(1, 30), min_size=1),
       restore_at=st.integers(0, 80))
def test_stream_and_batch_replay_give_identical_action_vectors(log, sizes, restore_at):
    """Micro-batches through FeatureEngine.process (with a snapshot/restore in between) read at
    each clean batch boundary equal the batch replay read at those times as cutoffs."""
    mem = MemoryLog(num_partitions=1)
    mem.append(0, [ev.encode(e) for e in log])
    late = timedelta(hours=24)
    engine = FeatureEngine(1, late, spec=SPEC)
    reads, offset, k, end = [], 0, 0, mem.end_offset(0)
    while offset < end:
        values, nxt = mem.fetch_values(0, offset, max_records=sizes[k % len(sizes)])
        k += 1
        out = engine.process(0, values, first_offset=offset)
        following, _ = mem.fetch_values(0, nxt, max_records=1)
        if out.touched and (not following or ev.event_time(following[0]) > out.watermark):
            reads.append(engine.read(0, out.watermark))
        if offset <= restore_at < nxt:
            blob = engine.snapshot(0)
            engine = FeatureEngine(1, late, spec=SPEC)
            engine.restore(0, blob)
        offset = nxt
    batch = FeatureState(late, spec=SPEC)
    got = []
    replay_partition(mem, 0, batch, [ref.us(r.t) for r in reads],
                     on_cutoff=lambda t, s: got.append(s.read(t, reads[len(got)].users)), batch=7)
    assert len(got) == len(reads)
    for s, b in zip(reads, got, strict=True):
        assert s.users == b.users and np.array_equal(s.values, b.values)
    assert batch.snapshot() == engine.snapshot(0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_logs(min_size=3, max_size=80, activity=True), late=lateness, every=st.integers(1, 9),
       horizon=st.integers(1, 12))
def test_snapshot_table_with_actions_equals_reference(events, late, every, horizon):
    log, parts = _log_of(events, [])
    t0 = ref.us(T0)
    cutoffs = [t0 + k * every * DAY_US for k in range(46 // every + 1)]
    snap = build_snapshots(log, horizon_days=horizon, lateness=late, cutoffs_us=cutoffs, spec=SPEC)
    assert list(snap.table.columns[3:-1]) == list(SPEC.engine_columns) and snap.spec is SPEC
    want = ref.snapshot_rows(parts, cutoffs, horizon, late // timedelta(microseconds=1), actions=ACTIONS)
    table = snap.table
    cut_us = table.cutoff.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    cols = list(SPEC.engine_columns)
    got = {(u, int(c)): (row, int(lab))
           for u, c, row, lab in zip(table.user_id, cut_us, table[cols].to_numpy(), table.label, strict=True)}
    assert set(got) == set(want)
    for key, (row, label) in got.items():
        f, want_label = want[key]
        assert label == want_label, key
        assert np.allclose(row, [f[n] for n in cols], rtol=1e-9, atol=1e-9), key
    assert log.num_partitions == N_PARTITIONS
