"""Test helpers shipped with the library: feature frames before and after a simulated drift.

:func:`scenario_frames` simulates a small history (optionally with a drift scenario from
``drift_day``), replays it through the one feature engine at midnight cutoffs
(:func:`pipeline.labels.build_snapshots`) and returns

* ``reference``: up to ``reference_rows`` active-user vectors pooled from the cutoffs
  before the drift (what training logs as the model's reference sample);
* ``current``: the vectors at one cutoff ``after_days`` after ``drift_day``.

The same call without ``drift`` is the no-drift control of the same size and seed.

:func:`stream_checks` is the end-to-end version: simulate, train a model as ``train``
does (its reference sample too), stream the log through a worker with drift checks on,
and return every check with the day its window holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class StreamedCheck:
    """One drift check of :func:`stream_checks`: the event day its window holds and the verdict."""

    day: int  # simulated day index of the window (days since the simulation's start)
    level: str
    drifted_share: float
    prediction_score: float | None
    drifted: tuple[str, ...]
    retrain_requested: bool


def stream_checks(
    work: Path, drift: str | None = None, drift_day: int | None = None, *, users: int = 3_000, days: int = 100,
    seed: int = 7, observe: str = "day_snapshot", partitions: int = 2, horizon_days: int = 14, every_days: int = 7,
    candidate: str = "logistic", train_end_day: int | None = None, config: Any = None, requester: Any = None,
) -> list[StreamedCheck]:
    """Simulate a history (optionally with a drift scenario from ``drift_day``), train a
    ``candidate`` on it as ``train`` does (labelled snapshots, temporal split; reference =
    5,000 training rows) using days before ``train_end_day`` (default: all), then stream
    the whole log through one worker with drift checks on; return every check.

    The no-drift call is the false-alarm measurement (docs/drift.md); with a scenario,
    checks before ``drift_day`` should stay Healthy and later ones should not.
    """
    from pipeline.config import PROJECT_ROOT
    from pipeline.drift.check import DriftResult
    from pipeline.drift.config import DriftConfig
    from pipeline.features.registry import FEATURE_SET_VERSION
    from pipeline.log import open_log
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history
    from pipeline.store import Store
    from pipeline.stream.config import StreamConfig, StreamPaths
    from pipeline.stream.drift_hook import DriftHook, write_reference
    from pipeline.stream.model import export_model, publish
    from pipeline.stream.worker import Worker
    from pipeline.training.data import build_dataset
    from pipeline.training.fit import fit_candidate
    from pipeline.training.specs import load_spec

    work = Path(work)
    sim = SimConfig(users=users, days=days, seed=seed, drift=drift, drift_day=drift_day if drift else None)
    log = open_log(work / "log", "events", num_partitions=partitions)
    simulate_history(Simulator(sim), log, work / "sim")
    start = sim.start.date() if hasattr(sim.start, "date") else sim.start
    end = None if train_end_day is None else start + timedelta(days=train_end_day)
    ds = build_dataset(log, horizon_days, every_days, end=end)
    model = fit_candidate(load_spec(PROJECT_ROOT / "models" / f"{candidate}.yaml"), ds.part("train"), ds.part("val"),
                          ds.features, seed=seed)  # fmt: skip
    train = ds.part("train")
    reference = train.sample(min(5_000, len(train)), random_state=seed)[list(model.features)]
    paths = StreamPaths(work, "drift-sim")
    ref = export_model(model, "1", FEATURE_SET_VERSION, paths.models, base_rate=float(train["label"].mean()))
    write_reference(Path(ref.path), reference)
    publish(paths.champion, ref)
    cfg = config or DriftConfig(executor="inline", full_report_every=0, observe=observe)
    store = Store(f"sqlite:///{work / 'churn.db'}")
    try:
        w = Worker("w0", log, store, paths, StreamConfig(group="drift-sim", batch_size=1_000, max_wait_s=0.0,
                                                           checkpoint_interval_s=3600.0), partitions=range(partitions))
        w.drift = DriftHook("w0", cfg, store, work, w.clock, requester=requester or (lambda req: None))
        w.run(until_caught_up=True)
        out = []
        t0 = to_us(sim.start)
        for o in w.drift.outcomes:
            r = o.result
            if not isinstance(r, DriftResult):
                continue
            out.append(StreamedCheck(int((to_us(r.window_end) - t0) // DAY_US), o.alert.level.value, r.drifted_share,
                                     None if r.prediction is None else r.prediction.score,
                                     tuple(f.feature for f in r.features if f.drifted), o.retrain_requested))
        return out
    finally:
        store.close()
        log.close()
