"""The scaling policy: table-driven scenarios and hypothesis properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.autoscale import (
    Action,
    AutoscalePolicy,
    PolicyConfig,
    RecordingController,
    autoscale_step,
    bounds,
    recommend,
)
from pipeline.errors import AutoscaleError, ConfigError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def spread(total: int, partitions: int, with_lag: int | None = None) -> dict[int, int]:
    """``total`` lag spread over the first ``with_lag`` of ``partitions`` partitions."""
    k = partitions if with_lag is None else with_lag
    lags = {p: 0 for p in range(partitions)}
    for i in range(k):
        lags[i] = total // k + (1 if i < total % k else 0)
    return lags


def run(config: PolicyConfig, steps, current: int = 1, partitions: int = 8):
    """Feed (seconds, total lag) steps through a controller; return (desired, action)s."""
    policy, ctl = AutoscalePolicy(config), RecordingController(current)
    out = []
    for t, lag in steps:
        lags = lag if isinstance(lag, dict) else spread(lag, partitions)
        d = autoscale_step(policy, ctl, T0 + timedelta(seconds=t), lags)
        out.append((d.desired, d.action.value))
    return out


UP, DOWN, HOLD = "scale_up", "scale_down", "hold"
FAST = dict(lag_threshold=1_000, max_consumers=8, cooldown_s=0)

SCENARIOS = {
    "burst scales up at once, capped at max": (
        PolicyConfig(**FAST), 1,
        [(0, 0), (15, 5_500), (30, 9_000), (45, 20_000)],
        [(1, HOLD), (6, UP), (8, UP), (8, HOLD)],
    ),
    "down only after a whole window of lower recommendations": (
        PolicyConfig(**FAST, scale_down_stabilization_s=60), 1,
        [(0, 6_000), (30, 1_000), (59, 1_000), (60, 1_000), (61, 1_000), (90, 1_000)],
        [(6, UP), (6, HOLD), (6, HOLD), (1, DOWN), (1, HOLD), (1, HOLD)],
    ),
    "flapping lag holds the highest recent recommendation": (
        PolicyConfig(**FAST, scale_down_stabilization_s=60), 1,
        [(0, 4_000), (15, 500), (30, 4_000), (45, 500), (60, 500), (75, 500), (90, 500)],
        [(4, UP), (4, HOLD), (4, HOLD), (4, HOLD), (4, HOLD), (4, HOLD), (1, DOWN)],
    ),
    "idle scales to zero when min allows, activation wakes it": (
        PolicyConfig(**FAST, min_consumers=0, activation_lag_threshold=100,
                     scale_down_stabilization_s=60), 2,
        [(0, 0), (30, 50), (60, 50), (90, 100), (100, 101), (110, 2_500)],
        [(2, HOLD), (2, HOLD), (0, DOWN), (0, HOLD), (1, UP), (3, UP)],
    ),
    "cooldown holds a second change, activation from zero ignores it": (
        PolicyConfig(lag_threshold=1_000, max_consumers=8, min_consumers=0, cooldown_s=60,
                     scale_down_stabilization_s=0), 0,
        [(0, 2_000), (30, 5_000), (59, 5_000), (60, 5_000), (70, 0), (130, 0), (140, 3_000)],
        [(2, UP), (2, HOLD), (2, HOLD), (5, UP), (5, HOLD), (0, DOWN), (3, UP)],
    ),
    "tolerance keeps the count near the target": (
        PolicyConfig(lag_threshold=10_000, max_consumers=8, cooldown_s=0,
                     scale_down_stabilization_s=0), 4,
        [(0, 42_000), (10, 36_500), (20, 46_000), (30, 20_000)],
        [(4, HOLD), (4, HOLD), (5, UP), (2, DOWN)],
    ),
    "scale-down step limit": (
        PolicyConfig(**FAST, scale_down_stabilization_s=0, scale_down_max_step=2), 8,
        [(0, 0), (10, 0), (20, 0), (30, 0), (40, 0)],
        [(6, DOWN), (4, DOWN), (2, DOWN), (1, DOWN), (1, HOLD)],
    ),
    "a fresh policy waits one window before its first scale-down": (
        PolicyConfig(**FAST, scale_down_stabilization_s=300), 5,
        [(0, 0), (150, 0), (299, 0), (300, 0)],
        [(5, HOLD), (5, HOLD), (5, HOLD), (1, DOWN)],
    ),
    "out of bounds is corrected at once, even in cooldown": (
        PolicyConfig(lag_threshold=1_000, max_consumers=4, min_consumers=2, cooldown_s=600), 9,
        [(0, 3_000), (1, 3_000)],
        [(4, DOWN), (4, HOLD)],
    ),
    "scale-up stabilization takes the lowest recent recommendation": (
        PolicyConfig(**FAST, scale_up_stabilization_s=30), 1,
        [(0, 1_000), (10, 5_000), (20, 6_000), (31, 6_000), (41, 8_000)],
        [(1, HOLD), (1, HOLD), (1, HOLD), (5, UP), (6, UP)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenarios(name):
    config, current, steps, want = SCENARIOS[name]
    assert run(config, steps, current=current) == want


@pytest.mark.parametrize(
    ("config", "lags", "current", "want"),
    [
        (PolicyConfig(max_consumers=10), spread(1_000_000, 4), 1, 4),
        (PolicyConfig(max_consumers=10, allow_idle_consumers=True), spread(1_000_000, 4), 1, 10),
        (PolicyConfig(max_consumers=10, limit_to_partitions_with_lag=True),
         spread(1_000_000, 8, with_lag=3), 1, 3),
        (PolicyConfig(max_consumers=10), spread(1_000_000, 8, with_lag=3), 1, 8),
        (PolicyConfig(max_consumers=2), spread(1_000_000, 8), 1, 2),
        (PolicyConfig(min_consumers=3, max_consumers=8), spread(0, 2), 1, 2),  # min capped too
        (PolicyConfig(min_consumers=0), spread(1, 4), 0, 1),  # active: at least one
    ],
)  # fmt: skip
def test_partition_caps(config, lags, current, want):
    assert recommend(config, current, lags)[0] == want


def test_reasons_say_what_happened():
    policy = AutoscalePolicy(PolicyConfig(lag_threshold=10_000, max_consumers=8, cooldown_s=60))
    d = policy.decide(T0, 1, spread(52_000, 4))
    assert (
        d.reason == "scale up 1 -> 4: lag 52,000 / 10,000 per consumer -> 6, capped at 4 partitions"
    )
    assert (d.recommended, d.total_lag, d.partitions, d.partitions_with_lag) == (4, 52_000, 4, 4)
    d = policy.decide(T0 + timedelta(seconds=10), 4, spread(300_000, 40))
    assert d.reason == (
        "hold at 4: lag 300,000 / 10,000 per consumer -> 30, capped at max 8; "
        "held by cooldown: last change 10 s ago (< 60 s)"
    )
    d = policy.decide(T0 + timedelta(seconds=20), 4, spread(0, 4))
    assert d.reason == (
        "hold at 4: lag 0 <= activation 0 -> min 1; scale-down held: highest recommendation "
        "in 300 s is 8"
    )
    fresh = AutoscalePolicy().decide(T0, 4, spread(0, 4))
    assert fresh.reason == (
        "hold at 4: lag 0 <= activation 0 -> min 1; "
        "scale-down waits for 300 s of observations (0 s so far)"
    )
    rec = d.as_record()
    assert rec["action"] == "hold" and rec["desired"] == 4 and rec["time"] == d.time


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lag_threshold=0), "lag_threshold=0"),
        (dict(min_consumers=5, max_consumers=4), "max_consumers=4"),
        (dict(max_consumers=0, min_consumers=0), "max_consumers=0"),
        (dict(tolerance=1.0), "tolerance=1.0"),
        (dict(scale_down_stabilization_s=-1), "scale_down_stabilization_s=-1"),
        (dict(scale_down_max_step=0), "scale_down_max_step=0"),
        (dict(allow_idle_consumers=True, limit_to_partitions_with_lag=True), "contradict"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PolicyConfig(**kwargs)


def test_bad_inputs():
    p = AutoscalePolicy()
    with pytest.raises(AutoscaleError, match="timezone-aware"):
        p.decide(datetime(2026, 1, 1), 1, {0: 1})
    p.decide(T0, 1, {0: 1})
    with pytest.raises(AutoscaleError, match="time went backwards"):
        p.decide(T0 - timedelta(seconds=1), 1, {0: 1})
    with pytest.raises(AutoscaleError, match="lag is an int >= 0"):
        p.decide(T0, 1, {0: -1})
    with pytest.raises(AutoscaleError, match="lags is empty"):
        p.decide(T0, 1, {})
    with pytest.raises(AutoscaleError, match="current=True"):
        p.decide(T0, True, {0: 1})


# -- properties ------------------------------------------------------------------------


@st.composite
def configs(draw):
    lo = draw(st.integers(0, 3))
    idle, limit = draw(st.sampled_from([(False, False), (True, False), (False, True)]))
    return PolicyConfig(
        lag_threshold=draw(st.sampled_from([1, 100, 1_000])),
        activation_lag_threshold=draw(st.sampled_from([0, 50, 500])),
        min_consumers=lo,
        max_consumers=draw(st.integers(max(1, lo), 10)),
        allow_idle_consumers=idle,
        limit_to_partitions_with_lag=limit,
        tolerance=draw(st.sampled_from([0.0, 0.1, 0.3])),
        scale_up_stabilization_s=draw(st.sampled_from([0.0, 0.0, 30.0])),
        scale_down_stabilization_s=draw(st.sampled_from([0.0, 60.0, 300.0])),
        scale_down_max_step=draw(st.sampled_from([None, 1, 3])),
        cooldown_s=draw(st.sampled_from([0.0, 15.0, 60.0])),
    )


@st.composite
def histories(draw):
    parts = draw(st.integers(1, 12))
    n = draw(st.integers(1, 40))
    steps = []
    for _ in range(n):
        dt = draw(st.sampled_from([0, 5, 15, 30, 61, 301]))
        lags = draw(st.lists(st.sampled_from([0, 0, 10, 900, 5_000, 60_000]), min_size=parts,
                             max_size=parts))  # fmt: skip
        poke = draw(st.none() | st.integers(0, 14))  # the supervisor lost/added workers
        steps.append((dt, dict(enumerate(lags)), poke))
    return steps


def _replay(config, steps, start):
    policy, ctl = AutoscalePolicy(config), RecordingController(start)
    t, out = T0, []
    for dt, lags, poke in steps:
        t += timedelta(seconds=dt)
        if poke is not None:
            ctl._current = poke
        out.append((autoscale_step(policy, ctl, t, lags), dict(policy._recs)))
    return out


@settings(max_examples=300, deadline=None)
@given(config=configs(), steps=histories(), start=st.integers(0, 12))
def test_policy_properties(config, steps, start):
    decisions = _replay(config, steps, start)
    first = decisions[0][0].time
    last_change = None
    for i, (d, _recs) in enumerate(decisions):
        low, high = bounds(config, d.partitions)
        # 1. always within [min, min(max, partitions)] (max alone with idle consumers)
        assert low <= d.desired <= high
        assert high == (config.max_consumers if config.allow_idle_consumers
                        else min(config.max_consumers, d.partitions))  # fmt: skip
        in_bounds = low <= d.current <= high
        if d.action is Action.SCALE_DOWN and in_bounds:
            # 2. no scale-down inside the window: a full window observed, all lower
            window = config.scale_down_stabilization_s
            assert (d.time - first).total_seconds() >= window
            recent = [
                dd.recommended
                for dd, _ in decisions[: i + 1]
                if (d.time - dd.time).total_seconds() < window or dd.time == d.time
            ]
            assert max(recent) <= d.desired
        if d.action is not Action.HOLD and in_bounds and d.current > 0 and last_change:
            # 3. changes inside bounds respect the cooldown
            assert (d.time - last_change).total_seconds() >= config.cooldown_s
        if d.action is not Action.HOLD:
            last_change = d.time
    # 4. deterministic: the same inputs give the same decisions
    again = _replay(config, steps, start)
    assert [d for d, _ in again] == [d for d, _ in decisions]


@settings(max_examples=200, deadline=None)
@given(config=configs().map(lambda c: replace(c, scale_up_stabilization_s=0.0)),
       lags=st.lists(st.integers(0, 100_000), min_size=1, max_size=12), data=st.data())  # fmt: skip
def test_scale_up_is_immediate_without_up_window(config, lags, data):
    low, high = bounds(config, len(lags))
    current = data.draw(st.integers(max(1, low), max(1, high)))
    assume(low <= current <= high)
    d = AutoscalePolicy(config).decide(T0, current, dict(enumerate(lags)))
    assume(d.recommended > current)
    assert d.desired == d.recommended and d.action is Action.SCALE_UP
