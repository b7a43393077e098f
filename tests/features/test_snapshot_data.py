"""Data checks on labelled snapshots of the default simulation (seed 42, 180 days).

The fast tier uses 5,000 users (same generative process, same seed); the slow tier the
full default of 20,000. Monthly churn is ~4-6 %, so a 30-day-horizon positive rate per
cutoff should lie in roughly 2-9 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.features.registry import FEATURE_NAMES
from pipeline.labels import build_snapshots, load_hazard
from pipeline.log import MemoryLog
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history
from pipeline.split import assign, report, temporal_split


def _build(users: int, tmp_path_factory):
    sim_dir = tmp_path_factory.mktemp(f"sim{users}")
    log = MemoryLog(num_partitions=4)
    simulate_history(Simulator(SimConfig(users=users)), log, sim_dir)
    return build_snapshots(log), load_hazard(sim_dir)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _build(5_000, tmp_path_factory)


def _check(snap, hazard) -> None:
    table = snap.table
    values = table[list(FEATURE_NAMES)].to_numpy()
    assert len(table) > 0 and np.isfinite(values).all()  # no NaN, no inf

    rates = table.groupby("cutoff").label.mean()
    assert len(rates) >= 15
    assert rates.between(0.02, 0.09).all(), rates

    # window features nest, counts stay in range, every subscriber has a plan and tenure
    f = table
    assert (f.sessions_7d <= f.sessions_14d).all() and (f.sessions_14d <= f.sessions_30d).all()
    assert f.active_days_7d.between(0, 7).all() and f.active_days_30d.between(0, 30).all()
    assert (f.active_days_30d <= f.sessions_30d).all()
    assert f.plan_tier.isin([0, 1, 2]).all() and (f.plan_price > 0).all() and (f.tenure_days >= 0).all()
    assert f.last_payment_failed.isin([0, 1]).all()

    # "active at t" agrees with the simulator's own population: its hazard table lists, per
    # day, the users subscribed at its start plus that day's new signups (first hazard day;
    # those sign up after the midnight cutoff). A signup at exactly 00:00 would be ours only.
    hz = hazard.assign(cutoff=pd.to_datetime(hazard.date).dt.tz_localize("UTC"))
    first_day = hz.groupby("user_id").cutoff.transform("min")
    hz = hz[hz.cutoff.isin(table.cutoff.unique()) & (hz.cutoff > first_day)]
    ours = set(zip(table.user_id, table.cutoff, strict=True))
    theirs = set(zip(hz.user_id, hz.cutoff, strict=True))
    assert theirs <= ours
    only_ours = ours - theirs
    extra = table[[k in only_ours for k in zip(table.user_id, table.cutoff, strict=True)]]
    assert (extra.tenure_days == 0).all()

    plan = temporal_split(snap.cutoffs, snap.horizon_days)
    table["split"] = assign(table.cutoff, plan)
    rep = report(table, plan)
    for part in ("train", "val", "test"):
        assert rep["parts"][part]["rows"] > 0 and 0.02 <= rep["parts"][part]["positive_rate"] <= 0.09


def test_snapshots_of_the_default_simulation_small(small):
    snap, hazard = small
    _check(snap, hazard)
    assert sum(s.late for s in snap.stats) == 0 and sum(s.invalid for s in snap.stats) == 0


@pytest.mark.slow
def test_snapshots_of_the_default_simulation_full(tmp_path_factory):
    _check(*_build(20_000, tmp_path_factory))
