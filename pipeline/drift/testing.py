"""Test helpers shipped with the library: feature frames before and after a simulated drift.

:func:`scenario_frames` simulates a small history (optionally with a drift scenario from
``drift_day``), replays it through the one feature engine at midnight cutoffs
(:func:`pipeline.labels.build_snapshots`) and returns

* ``reference``: up to ``reference_rows`` active-user vectors pooled from the cutoffs
  before the drift (what training logs as the model's reference sample);
* ``current``: the vectors at one cutoff ``after_days`` after ``drift_day``.

The same call without ``drift`` is the no-drift control of the same size and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from pipeline.features.registry import FEATURE_NAMES
from pipeline.features.timebase import DAY_US, to_us


@dataclass(frozen=True)
class ScenarioFrames:
    reference: pd.DataFrame  # FEATURE_NAMES columns
    current: pd.DataFrame  # FEATURE_NAMES columns, plus user_id
    current_time: pd.Timestamp


def scenario_frames(
    drift: str | None, drift_day: int = 45, *, users: int = 4_000, seed: int = 11, after_days: int = 10,
    reference_every: int = 3, reference_rows: int = 5_000, warmup_days: int = 30,
) -> ScenarioFrames:
    from pipeline.labels import build_snapshots
    from pipeline.log import MemoryLog
    from pipeline.simulator import SimConfig, Simulator

    days = drift_day + after_days + 2  # build_snapshots keeps a cutoff only if its 1-day horizon fits
    cfg = SimConfig(users=users, days=days, seed=seed, drift=drift, drift_day=drift_day if drift else None)
    sim = Simulator(cfg)
    log = MemoryLog(num_partitions=2)
    from pipeline.simulator.history import Router, append_day

    router = Router(log.num_partitions)
    for r in sim.run():  # no side files: the tests need only the log
        append_day(log, router, sim, r.users, r.lines)
    start = to_us(cfg.start)
    ref_cuts = [start + d * DAY_US for d in range(warmup_days, drift_day + 1, reference_every)]
    cur_cut = start + (drift_day + after_days) * DAY_US
    snap = build_snapshots(log, horizon_days=1, cutoffs_us=[*ref_cuts, cur_cut], lateness=timedelta(hours=24))
    # labels need a horizon after the cutoff; we only want features, so read the table as built
    table = snap.table
    cur_t = pd.Timestamp(cur_cut, unit="us", tz="UTC")
    ref = table[table.cutoff < cur_t]
    rng = np.random.default_rng(seed)
    if len(ref) > reference_rows:
        ref = ref.iloc[np.sort(rng.choice(len(ref), reference_rows, replace=False))]
    cur = table[table.cutoff == cur_t]
    return ScenarioFrames(ref[list(FEATURE_NAMES)].reset_index(drop=True),
                          cur[["user_id", *FEATURE_NAMES]].reset_index(drop=True), cur_t)
