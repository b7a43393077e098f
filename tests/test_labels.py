"""Cutoff schedule, forward labels, temporal split (no label window overlaps a later part),
oracle probability and the Parquet output."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipeline.errors import SplitError
from pipeline.features.registry import FEATURE_SET_VERSION
from pipeline.features.timebase import DAY_US, from_us, midnight_us
from pipeline.labels import (
    Snapshots,
    cutoff_schedule,
    forward_labels,
    oracle_probability,
    write_snapshots,
)
from pipeline.split import assign, report, temporal_split

JAN1 = midnight_us(date(2026, 1, 1))


def test_schedule_is_anchored_at_the_end_and_leaves_the_horizon():
    end = midnight_us(date(2026, 6, 30)) - 60_000_000  # last event 23:59 on Jun 29
    cut = cutoff_schedule(JAN1 + 300_000_000, end, horizon_days=30, every_days=7, warmup_days=30)
    assert from_us(cut[-1]).date() == date(2026, 5, 30) and cut[-1] + 30 * DAY_US <= end
    assert from_us(cut[0]).date() >= date(2026, 2, 1) and cut[0] - 7 * DAY_US < JAN1 + 31 * DAY_US
    assert all(b - a == 7 * DAY_US for a, b in zip(cut, cut[1:], strict=False))
    assert all(c % DAY_US == 0 for c in cut)


def test_schedule_that_cannot_fit_says_what_to_change():
    with pytest.raises(SplitError, match="simulate more days"):
        cutoff_schedule(JAN1, JAN1 + 50 * DAY_US, horizon_days=30, warmup_days=30)


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 60)), max_size=30),
    cancels=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 100 * 24)), max_size=10),
    horizon=st.integers(1, 30),
)
def test_forward_labels_equal_a_plain_loop(rows, cancels, horizon):
    users = [u for u, _ in rows]
    cut = np.array([JAN1 + d * DAY_US for _, d in rows], dtype=np.int64)
    c_users = [u for u, _ in cancels]
    c_ts = np.array([JAN1 + h * 3_600_000_000 for _, h in cancels], dtype=np.int64)
    got = forward_labels(users, cut, c_users, c_ts, horizon)
    want = [int(any(cu == u and t < ct <= t + horizon * DAY_US for cu, ct in zip(c_users, c_ts, strict=True)))
            for u, t in zip(users, cut, strict=True)]
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(
    days=st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True),
    horizon=st.integers(1, 60), val=st.sampled_from([0.0, 0.1, 0.2, 0.3]), test=st.sampled_from([0.1, 0.2, 0.3]),
    extra_gap=st.integers(0, 20),
)
def test_split_never_lets_a_label_window_overlap_a_later_part(days, horizon, val, test, extra_gap):
    cut = [JAN1 + d * DAY_US for d in days]
    try:
        plan = temporal_split(cut, horizon, val_frac=val, test_frac=test, gap_days=horizon + extra_gap)
    except SplitError as exc:
        assert "cutoff" in str(exc)  # too few cutoffs for the gaps: refused, never a leaky split
        assume(False)
    parts = plan.cutoffs
    assert sorted(parts["train"] + parts["val"] + parts["test"] + parts["gap"]) == sorted(cut)
    assert parts["train"] and parts["test"] and (bool(parts["val"]) == (val > 0))
    later = parts["val"] + parts["test"]
    for t in parts["train"]:  # no training label window (t, t + H] reaches into val or test
        assert t + horizon * DAY_US <= min(later)
    for t in parts["val"]:
        assert t + horizon * DAY_US <= min(parts["test"])
    assert max(parts["train"]) < min(later)


def test_default_schedule_split_and_report():
    cut = [JAN1 + 37 * DAY_US + k * 7 * DAY_US for k in range(17)]
    plan = temporal_split(cut, 30)
    assert [len(plan.cutoffs[p]) for p in ("train", "val", "test", "gap")] == [5, 2, 2, 8]
    table = pd.DataFrame({
        "user_id": ["u"] * 17, "label": [1, 0] * 8 + [1],
        "cutoff": pd.to_datetime(np.array(cut), unit="us", utc=True),
    })
    table["split"] = assign(table.cutoff, plan)
    rep = report(table, plan)
    assert rep["parts"]["train"]["rows"] == 5 and rep["parts"]["test"]["positives"] == 1
    assert rep["parts"]["test"]["last_cutoff"] == from_us(cut[-1]).date().isoformat()
    with pytest.raises(SplitError, match="shorter than the horizon"):
        temporal_split(cut, 30, gap_days=10)


def test_oracle_probability_from_the_hazard_side_table():
    table = pd.DataFrame({"user_id": ["u1", "u2"], "cutoff": pd.to_datetime(["2026-01-02", "2026-01-02"], utc=True)})
    hazard = pd.DataFrame({
        "user_id": ["u1"] * 5 + ["u2"],
        "date": [date(2026, 1, d) for d in (1, 2, 3, 4, 5)] + [date(2026, 1, 2)],
        "hazard": [0.9, 0.1, 0.2, 0.5, 0.7, 0.25],
    })
    p = oracle_probability(table, hazard, horizon_days=2)  # days Jan 2 and Jan 3
    assert p == pytest.approx([1 - 0.9 * 0.8, 0.25])
    current = oracle_probability(table, hazard, horizon_days=2, method="current")
    assert current == pytest.approx([1 - 0.9**2, 1 - 0.75**2])


def test_write_snapshots_is_parquet_with_the_feature_set_version(tmp_path):
    table = pd.DataFrame({"user_id": ["a"], "cutoff": pd.to_datetime(["2026-02-01"], utc=True), "label": [1]})
    snap = Snapshots(table, [midnight_us(date(2026, 2, 1))], 30, midnight_us(date(2026, 3, 5)), [])
    path = write_snapshots(snap, tmp_path / "s" / "snapshots.parquet", {"note": "x"})
    meta = pq.read_schema(path).metadata
    assert meta[b"feature_set_version"] == FEATURE_SET_VERSION.encode() and meta[b"note"] == b"x"
    back = pd.read_parquet(path)
    assert back.cutoff.iloc[0] == datetime(2026, 2, 1, tzinfo=UTC) and not (tmp_path / "s" / "snapshots.tmp").exists()


def test_latest_features_come_from_the_same_replay_and_leave_the_labelled_table_alone(tmp_path):
    """``latest_us``: the active users' features at that time, unlabelled; at a labelled
    cutoff they equal that cutoff's rows, and asking for them changes nothing else."""
    from pipeline.labels import activity_range, build_snapshots
    from pipeline.testing.stream import simulated_log

    log = simulated_log(tmp_path, users=300, days=40)
    try:
        cut = cutoff_schedule(*activity_range(log), horizon_days=7, every_days=3, warmup_days=7)
        plain = build_snapshots(log, 7, 3, cutoffs_us=cut)
        at_cutoff = build_snapshots(log, 7, 3, cutoffs_us=cut, latest_us=cut[-2])
        pd.testing.assert_frame_equal(plain.table, at_cutoff.table)
        assert plain.cutoffs == at_cutoff.cutoffs and plain.latest is None
        rows = plain.table[plain.table["cutoff"] == from_us(cut[-2])].drop(columns=["partition", "label"])
        pd.testing.assert_frame_equal(at_cutoff.latest, rows.sort_values("user_id").reset_index(drop=True))
        # past the last labelled cutoff (where no label can exist yet): not in the table
        end = activity_range(log)[1] // DAY_US * DAY_US
        after = build_snapshots(log, 7, 3, cutoffs_us=cut, latest_us=end)
        pd.testing.assert_frame_equal(plain.table, after.table)
        assert plain.cutoffs == after.cutoffs and end > cut[-1] and len(after.latest) > 0
        assert set(after.latest["cutoff"]) == {from_us(end)} and after.latest["user_id"].is_unique
    finally:
        log.close()
