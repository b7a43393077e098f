"""False alarms of the stream's drift checks on simulations with no drift at all.

For each seed: simulate ``--users`` x ``--days`` with no scenario, train the logistic
candidate as ``train`` does (its reference: 5,000 training rows), stream the whole log
through one worker with drift checks on (``pipeline.testing.drift.stream_checks``), and
count checks at Warning or worse. Both window modes can be measured: ``day_snapshot``
(the default: every active user at each midnight, like the reference) and ``scored``
(the users the stream scores, as of their latest event).

Levels are graded from the stored checks (``drift_runs`` + ``drift_features``) with the
champion's feature importance (:mod:`pipeline.drift.importance`, as the stream's drift
leader computes it) by :func:`pipeline.drift.alerts.grade` -- the monitor's own rule, so
the count equals what the stream decided. ``--keep DIR`` keeps each run's store and
model; ``--regrade DIR`` grades kept runs again (other thresholds: ``--set k=v``) without
simulating anything.

    python -m benchmarks.drift_false_alarms [--seeds 1 2 3 4 5] [--modes day_snapshot] [--keep DIR]
    python -m benchmarks.drift_false_alarms --regrade DIR --set top_feature_critical=0.25
    python -m benchmarks.drift_false_alarms --scenario price_increase --drift-day 102 --days 112 --train-end-day 100

Takes ~10-20 s per seed and mode on one core of the project's machine (measured
2026-12-03). ``python -m benchmarks.run drift_alarms`` (``benchmarks/bench_drift_alarms.py``)
runs it and writes
``drift_false_alarm_warning_share`` and ``drift_false_alarm_critical`` (day_snapshot mode,
no scenario) into ``benchmarks/results.json`` like every benchmark. Results: docs/drift.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAST: dict[str, float] = {}  # the figures of the newest main() without a scenario


@dataclass(frozen=True)
class Graded:
    day: int
    level: str
    drifted: tuple[str, ...]
    drifted_share: float
    reasons: tuple[str, ...]


def regrade(work: Path, cfg, start_day_us: int) -> list[Graded]:
    """Every stored check of a kept run, graded with ``cfg`` and the run's champion importance."""
    from pipeline.drift.alerts import grade
    from pipeline.drift.check import FeatureDrift
    from pipeline.features.timebase import DAY_US
    from pipeline.store import Store
    from pipeline.stream.config import StreamPaths
    from pipeline.stream.drift_hook import model_importance, read_reference
    from pipeline.stream.model import load_export, read_pointer

    ref = read_pointer(StreamPaths(work, "drift-sim").champion)
    model = load_export(ref)
    importance = model_importance(model, read_reference(Path(ref.path)))
    store = Store(f"sqlite:///{work / 'churn.db'}")
    try:
        runs, feats = store.drift_runs(), store.drift_features()
    finally:
        store.close()
    out = []
    for run in runs.itertuples(index=False):
        fs = [FeatureDrift(f.feature, f.method, f.score, f.threshold, bool(f.drifted))
              for f in feats[feats.run_id == run.run_id].itertuples(index=False)]
        pred = None if run.prediction_method is None else FeatureDrift(
            "risk", run.prediction_method, run.prediction_score, run.prediction_threshold, bool(run.prediction_drift))
        drifted = [f.feature for f in sorted(fs, key=lambda f: -f.score) if f.drifted]
        alert = grade(run.drifted_share, pred, drifted, cfg, features=fs, importance=importance)
        day = int((run.window_end.value // 1_000 - start_day_us) // DAY_US)
        out.append(Graded(day, alert.level.value, tuple(drifted), float(run.drifted_share), alert.reasons))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.drift_false_alarms")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--users", type=int, default=3_000)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--modes", nargs="+", default=["day_snapshot"])
    ap.add_argument("--scenario", default=None)
    ap.add_argument("--drift-day", type=int, default=None)
    ap.add_argument("--train-end-day", type=int, default=None, help="default: the drift day")
    ap.add_argument("--candidate", default="logistic")
    ap.add_argument("--keep", type=Path, default=None, help="keep each run (store, model) under this folder")
    ap.add_argument("--regrade", type=Path, default=None, help="grade the runs kept under this folder again")
    ap.add_argument("--set", nargs="*", default=[], help="DriftConfig overrides for grading, e.g. top_k=5")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run side by side in this many processes")
    ap.add_argument("--no-write", action="store_true", help="(kept for old command lines; figures go to results.json "
                    "through `python -m benchmarks.run drift_alarms`)")
    args = ap.parse_args(argv)

    from pipeline.drift.config import DriftConfig

    overrides = {k: (int(v) if v.isdigit() else float(v)) for k, v in (s.split("=", 1) for s in args.set)}
    DriftConfig(**overrides)  # bad overrides: a clear error before anything runs
    totals: dict[str, Counter] = {m: Counter() for m in args.modes}
    jobs = [(seed, mode) for seed in args.seeds for mode in args.modes]
    opts = {k: getattr(args, k) for k in ("users", "days", "scenario", "drift_day", "train_end_day", "candidate",
                                          "keep", "regrade")}  # fmt: skip
    if args.jobs > 1 and len(jobs) > 1:
        # each (seed, mode) is independent and deterministic (inline checks): a share/count,
        # not a time, so running them side by side changes nothing but the wall clock
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs)), mp_context=ctx) as pool:
            futures = [pool.submit(_one, seed, mode, opts, overrides) for seed, mode in jobs]
            outcomes = [f.result() for f in futures]  # in job order: the printout is the same as serial
    else:
        outcomes = [_one(seed, mode, opts, overrides) for seed, mode in jobs]
    for (_, mode), (text, counts) in zip(jobs, outcomes, strict=True):
        print(text, flush=True)
        totals[mode].update(counts)
    for mode, c in totals.items():
        rate = c["alarms"] / max(1, c["checks"])
        print(f"{mode:12s}: false-alarm rate {c['alarms']}/{c['checks']} = {rate:.1%} of checks "
              f"({c['critical']} Critical) over seeds {args.seeds}")
    snap = totals.get("day_snapshot")
    if snap and args.scenario is None and not overrides:
        LAST.clear()
        LAST.update(figures(snap))  # what bench_drift_alarms.run returns
    return 0


def _one(seed: int, mode: str, opts: dict, overrides: dict) -> tuple[str, dict[str, int]]:
    """One seed and window mode: simulate, train, stream, grade. Returns its printout and
    counts (``checks``, ``alarms``, ``critical`` before the drift day)."""
    from pipeline.drift.config import DriftConfig
    from pipeline.features.timebase import to_us
    from pipeline.simulator import SimConfig
    from pipeline.testing.drift import stream_checks

    cfg = DriftConfig(**overrides)
    scenario, drift_day, regrade_dir, keep = opts["scenario"], opts["drift_day"], opts["regrade"], opts["keep"]
    name = f"seed{seed}-{mode}-{scenario or 'none'}-{opts['candidate']}"
    kept = (regrade_dir or keep or Path()) / name
    work = kept if (regrade_dir or keep) else Path(tempfile.mkdtemp(prefix="churn-drift-fa-"))
    t = time.perf_counter()
    start = to_us(SimConfig(users=opts["users"], days=opts["days"], seed=seed).start)
    try:
        if regrade_dir is None:
            shutil.rmtree(work, ignore_errors=True)
            stream_checks(work, scenario, drift_day, users=opts["users"], days=opts["days"], seed=seed,
                          observe=mode, train_end_day=opts["train_end_day"] or drift_day,
                          candidate=opts["candidate"])  # fmt: skip
        checks = regrade(work, cfg, start)
    finally:
        if not (regrade_dir or keep):
            shutil.rmtree(work, ignore_errors=True)
    before = [c for c in checks if drift_day is None or c.day < drift_day]
    after = [c for c in checks if drift_day is not None and c.day >= drift_day]
    alarms = [c for c in before if c.level != "Healthy"]
    critical = sum(c.level == "Critical" for c in before)
    top = Counter(f for c in alarms for f in c.drifted).most_common(4)
    mean_share = sum(c.drifted_share for c in before) / max(1, len(before))
    out = [f"seed {seed} {mode:12s}: {len(alarms)}/{len(before)} checks Warning+ ({critical} Critical), "
           f"mean drifted share {mean_share:.1%}, most drifted in alarms {top} [{time.perf_counter() - t:.0f} s]"]
    out += [f"    day {c.day} Critical: {'; '.join(c.reasons)}" for c in before if c.level == "Critical"]
    if after:
        first = next((c for c in after if c.level == "Critical"), None)
        out.append(f"    after day {drift_day}: {sum(c.level != 'Healthy' for c in after)}/{len(after)} Warning+, "
                   f"{sum(c.level == 'Critical' for c in after)} Critical; first Critical on day "
                   f"{None if first is None else first.day}"
                   f"{'' if first is None else ': ' + '; '.join(first.reasons)}")  # fmt: skip
    return "\n".join(out), {"checks": len(before), "alarms": len(alarms), "critical": critical}


def figures(totals: Counter) -> dict[str, float]:
    """The false-alarm figures of ``day_snapshot`` totals (no scenario)."""
    return {"drift_false_alarm_warning_share": totals["alarms"] / max(1, totals["checks"]),
            "drift_false_alarm_critical": float(totals["critical"]), "drift_false_alarm_checks": float(totals["checks"])}


if __name__ == "__main__":
    sys.exit(main())
