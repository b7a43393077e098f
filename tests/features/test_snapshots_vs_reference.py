"""The labelled snapshot table (replay + labels) equals the plain-loop reference."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import events as ev
from pipeline.features.registry import FEATURE_NAMES
from pipeline.labels import build_snapshots
from pipeline.log import MemoryLog, partition_for
from tests.features import reference as ref
from tests.features.strategies import DAY_US, T0, event_logs, lateness

N_PARTITIONS = 2


def _log_of(events: list[ev.Event], garbage_at: list[int]) -> tuple[MemoryLog, list[list[ev.Event]]]:
    log = MemoryLog(num_partitions=N_PARTITIONS)
    parts: list[list[ev.Event]] = [[] for _ in range(N_PARTITIONS)]
    for e in events:
        parts[partition_for(e.user_id.encode(), N_PARTITIONS)].append(e)
    for p, part in enumerate(parts):
        values = [ev.encode(e) for e in part]
        for pos in sorted(garbage_at, reverse=True):  # invalid records are skipped, not fatal
            values.insert(min(pos, len(values)), b'{"type":"session","user_id":"a"}')
        log.append(p, values)
    return log, parts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_logs(min_size=3, max_size=80), late=lateness, every=st.integers(1, 9),
    horizon=st.integers(1, 12), garbage_at=st.lists(st.integers(0, 80), max_size=2),
)
def test_snapshot_table_equals_reference(events, late, every, horizon, garbage_at):
    log, parts = _log_of(events, garbage_at)
    t0 = ref.us(T0)
    cutoffs = [t0 + k * every * DAY_US for k in range(46 // every + 1)]
    snap = build_snapshots(log, horizon_days=horizon, lateness=late, cutoffs_us=cutoffs)

    want = ref.snapshot_rows(parts, cutoffs, horizon, late // timedelta(microseconds=1))
    table = snap.table
    cut_us = table.cutoff.dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)
    got = {
        (u, int(c)): (row, int(lab))
        for u, c, row, lab in zip(table.user_id, cut_us, table[list(FEATURE_NAMES)].to_numpy(), table.label, strict=True)
    }
    assert set(got) == set(want)
    for key, (row, label) in got.items():
        f, want_label = want[key]
        assert label == want_label, key
        assert np.allclose(row, [f[n] for n in FEATURE_NAMES], rtol=1e-9, atol=1e-9), key
    assert sum(s.invalid for s in snap.stats) == len(garbage_at) * N_PARTITIONS
    end = max(ref.us(e.ts) for e in events)
    assert snap.cutoffs == [c for c in cutoffs if c + horizon * DAY_US <= end]
    assert set(cut_us.tolist()) <= set(snap.cutoffs)
