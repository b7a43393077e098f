"""The ground-truth loop end to end in compressed time, in one process (issue 18):
drift -> Critical -> episode with its onset -> retrain deferred until post-onset labels
matured -> retrain on post-onset data, gated on post-onset labels, promoted -> the stream
switches, the episode closes -> realised performance (labels matured after the fact)
recovers. The Prefect half (a created ``train/weekly`` run) is ``flows.retrain``'s
``PrefectRunRequester``, tested in ``tests/flows/test_retrain.py``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.drift import episodes as ep
from pipeline.testing.loop import closed_loop, describe

pytestmark = pytest.mark.slow  # ~3-6 min on a shared 2-core machine (3,000 users x 100 days)


def test_drift_episode_deferred_retrain_promoted_and_realised_performance_recovers(tmp_path):
    from pipeline.simulator.scenarios import COMPRESSED as T

    run = closed_loop(tmp_path, T.drift, T.drift_day, users=T.users, days=T.days, seed=3, horizon_days=T.horizon_days,
                      retrain_after_days=T.retrain_after_days, min_churners=T.min_churners)
    print("\n" + describe(run))
    d = run.decisions
    kinds = d["decision"].tolist()
    (opened,) = [i for i, k in enumerate(kinds) if k == ep.OPENED][:1]
    episode = run.episodes.iloc[0]
    onset = episode["onset"].date()
    assert run.drift_day - timedelta(days=7) <= onset <= run.drift_day + timedelta(days=3)
    assert kinds[opened + 1] == ep.DEFERRED and d["due"].iloc[opened + 1].date() == onset + timedelta(days=21)
    first_request = kinds.index(ep.REQUESTED)
    assert d["time"].iloc[first_request].date() >= onset + timedelta(days=21)  # not before labels matured
    assert ep.SENT in kinds and "gate promoted" in kinds and ep.CLOSED in kinds
    assert run.gate["decision"] == "promoted" and run.promoted_version == "2"
    assert episode["status"] == "closed"
    # realised performance, on labels that matured after the fact
    assert run.recovery() > 0, describe(run)
