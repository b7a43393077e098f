"""The ground-truth loop end to end in compressed time (``pipeline.testing.loop.closed_loop``).

A simulated history (quick and full: ``pipeline.simulator.scenarios.COMPRESSED``, 3,000
users x 100 days, 7-day label horizon) in which the catalogue loses titles on day 60
(``content_outage``); a logistic champion
trained on the days before; the log streamed through one worker with drift checks and
the episode retrain policy (retrain 21 days after the onset with >= 30 churners, on
cutoffs from 28 days before the onset, gated on post-onset labels); then the realised performance of
every matured scoring day.

* ``realised_auc_recovery``: mean realised ROC-AUC (per scoring day) of the days after the
  promotion on which the retrained champion had scored >= 80 % of the users, minus that
  of the days of the drift episode (drift to promotion), all on labels that matured after
  the fact. Target: > 0 (the retrain learnt the new world).
* ``realised_auc_drift_drop``: the 21 days before the drift minus the episode.
* ``loop_retrain_days_after_onset``: days from the (simulated) drift to the promotion.

Figures are NaN when the gate rejected the retrain (then nothing was promoted): the
timeline printed says why. ~15 s on the project's 2-core machine (13 s measured 2026-12-03;
the budget in ``benchmarks/run.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


def run(quick: bool = False) -> dict[str, float]:
    from pipeline.simulator.scenarios import COMPRESSED as T
    from pipeline.testing.loop import closed_loop, describe

    work = Path(tempfile.mkdtemp(prefix="churn-loop-"))
    try:
        r = closed_loop(work, T.drift, T.drift_day, users=T.users, days=T.days, seed=3, horizon_days=T.horizon_days,
                        retrain_after_days=T.retrain_after_days, min_churners=T.min_churners)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(describe(r))
    print(f"gate: {r.gate}")
    nan = float("nan")
    if r.promoted_on is None:
        return {"realised_auc_recovery": nan, "realised_auc_drift_drop": nan, "loop_retrain_days_after_onset": nan}
    from datetime import timedelta

    before = r.auc(since=r.drift_day - timedelta(days=21), until=r.drift_day)
    return {"realised_auc_recovery": r.recovery(), "realised_auc_drift_drop": before - r.during(),
            "loop_retrain_days_after_onset": float((r.promoted_on - r.drift_day).days)}
