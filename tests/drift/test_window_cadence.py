"""The ring buffer and the cadence: cheap, bounded, and "many at once == one by one"."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.drift.cadence import Cadence
from pipeline.drift.window import DriftWindow
from pipeline.errors import ConfigError
from tests.drift.helpers import T0


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 12), max_size=12), capacity=st.integers(1, 10))
def test_window_keeps_the_newest_rows_in_order_whatever_the_batching(sizes, capacity):
    total = sum(sizes)
    values = np.arange(total * 2, dtype=np.float64).reshape(total, 2)
    users = [f"u{i}" for i in range(total)]
    batched, single = DriftWindow(("x", "y"), capacity), DriftWindow(("x", "y"), capacity)
    i = 0
    for n in sizes:
        batched.observe(values[i:i + n], values[i:i + n, 0] / 100, T0 + timedelta(hours=i), users[i:i + n])
        for j in range(i, i + n):
            single.observe(values[j:j + 1], values[j:j + 1, 0] / 100, T0 + timedelta(hours=i), users[j:j + 1])
        i += n
    a, b = batched.snapshot(), single.snapshot()
    keep = slice(max(0, total - capacity), total)
    assert a.values.tolist() == b.values.tolist() == values[keep].tolist()
    assert a.users is not None and a.users.tolist() == users[keep] and a.risk.tolist() == b.risk.tolist()
    assert len(batched) == min(total, capacity) and batched.seen == total


def test_window_bounds_and_errors():
    w = DriftWindow(("x",), 4)
    w.observe(np.ones((2, 1)), np.zeros(2), T0)
    w.observe(np.ones((1, 1)), np.zeros(1), T0 + timedelta(days=1))
    snap = w.snapshot()
    assert snap.start == T0 and snap.end == T0 + timedelta(days=1) and snap.users is None  # no ids given
    with pytest.raises(ConfigError, match=r"shape \(n, 1\)"):
        w.observe(np.ones((2, 3)), np.zeros(2), T0)
    with pytest.raises(ConfigError, match="timezone-aware"):
        w.observe(np.ones((1, 1)), np.zeros(1), T0.replace(tzinfo=None))
    w.clear()
    assert len(w) == 0 and len(w.snapshot()) == 0


def test_cadence_rows_minutes_and_event_days():
    c = Cadence(every_rows=1_000, every_minutes=5, per_event_day=True)
    c.start(0.0)
    assert not c.due(10_000.0)  # nothing observed: nothing to check
    c.add(10, day=100)
    assert not c.due(60.0)
    assert c.due(301.0) and "min" in c.reason
    c.checked(301.0)
    c.add(999, day=100)
    assert not c.due(302.0)
    c.add(1, day=100)
    assert c.due(302.0) and c.reason == "1,000 rows scored"
    c.checked(302.0)
    c.add(5, day=101)  # replay crossed midnight of event time
    assert c.due(303.0) and c.reason == "event time entered a new day"
    c.checked(303.0)
    c.add(5, day=101)
    assert not c.due(304.0)
