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

pytestmark = pytest.mark.slow  # ~2-4 min on a shared 2-core machine


def test_drift_episode_deferred_retrain_promoted_and_realised_performance_recovers(tmp_path):
    run = closed_loop(tmp_path, "content_outage", 60, users=2_000, days=100, seed=3)
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
