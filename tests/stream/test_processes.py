"""The supervised consumer group with real worker processes (slow).

* SIGKILL at random moments, repeatedly: the supervisor restarts the workers, they resume
  from their checkpoints, and the final scores and feature state equal those of an
  uninterrupted run over the same log.
* Autoscaling: the group scales up on lag and down when it drains; partitions move by
  checkpoint handover - no record lost or processed twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline.log import dead_letter_log, open_log, parse_dead_letter
from pipeline.store import Store
from pipeline.stream.champion import StaticChampion
from pipeline.stream.config import StreamConfig, StreamPaths
from pipeline.stream.model import export_model, publish
from pipeline.stream.supervisor import Supervisor
from pipeline.stream.worker import Worker
from pipeline.testing.stream import simulated_log, tiny_model

from .helpers import (
    append_bad_events,
    history,
    run_in_thread,
    scores,
    sigkill_workers_mid_run,
    states,
)

pytestmark = pytest.mark.slow
BATCH = 100
KILLS = 4


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture
def world(tmp_path, model):
    """A 4-partition log (~21k events, a few bad ones) and the reference: one uninterrupted
    in-process worker over a copy of it."""
    log = simulated_log(tmp_path / "data" / "log", users=500, days=40, partitions=4, seed=9)
    append_bad_events(log, 2)
    resent = [r.value for r in log.iter_records(1, log.end_offset(1) - 150)]
    log.append(1, resent)  # a producer re-sent a batch: applied once, killed or not (issue 16 item 5)
    shutil.copytree(tmp_path / "data" / "log", tmp_path / "ref" / "log")
    ref_log = open_log(tmp_path / "ref" / "log", "events")
    ref_paths = StreamPaths(tmp_path / "ref", "test")
    publish(ref_paths.champion, export_model(model, "1", model_fs(), ref_paths.models))
    with Store(f"sqlite:///{tmp_path / 'ref.db'}") as ref_store:
        cfg = StreamConfig(
            group="test", batch_size=BATCH, max_wait_s=0.0, checkpoint_interval_s=3600
        )
        ref = Worker("ref", ref_log, ref_store, ref_paths, cfg, partitions=range(4)).run(
            until_caught_up=True
        )
        assert ref["duplicates"] == 150
        want = scores(ref_store), history(ref_store)
        assert want[1]["user_id"].value_counts().max() > 1  # several days per user
    return log, want, states(ref_paths, ref_log)


def model_fs() -> str:
    from pipeline.features.registry import FEATURE_SET_VERSION

    return FEATURE_SET_VERSION


def _supervisor(tmp_path: Path, model, drift=None, reference=None, **cfg) -> Supervisor:
    champion = StaticChampion()
    champion.set(model, "1", reference=reference)
    base = {
        "group": "test",
        "batch_size": BATCH,
        "max_wait_s": 0.05,
        "flush_interval_s": 0.1,
        "heartbeat_interval_s": 0.5,
        "metrics_interval_s": 1.0,
        "drain_timeout_s": 30.0,
    }
    return Supervisor(
        tmp_path / "data",
        "events",
        f"sqlite:///{tmp_path / 'churn.db'}",
        champion,
        StreamConfig(**(base | cfg)),
        drift=drift,
    )


# "evicting": checkpoints rarer than the writer's cache fills (each full cache writes the
# closed history points and keeps each user's newest row pending), kills between them
CACHES = {"default": {"checkpoint_interval_s": 0.3},
          "evicting": {"checkpoint_interval_s": 1.5, "flush_interval_s": 3600.0, "max_pending_rows": 1_200}}


@pytest.mark.parametrize("cache", list(CACHES))
def test_sigkill_at_random_moments_ends_equal_to_an_uninterrupted_run(
    tmp_path, world, model, cache: str
) -> None:
    log, want_scores, want_states = world
    sup = _supervisor(
        tmp_path,
        model,
        workers=2,
        autoscale=False,
        max_events_per_s=1_500.0,
        **CACHES[cache],
    )
    # generous limits: on a loaded 2-core machine a restarted worker can take ~60 s to come back
    th, out = run_in_thread(sup, until_caught_up=True, max_seconds=330)
    kills = sigkill_workers_mid_run(sup, th, log, "test", log.end_offset, KILLS, seed=17, within_s=300)
    th.join(timeout=360)
    assert not th.is_alive() and "error" not in out, out.get("error")
    summary = out["summary"]
    assert kills == KILLS and summary["restarts"] == KILLS and summary["stopped"] == "caught up"
    assert summary["total_lag"] == 0
    pd.testing.assert_frame_equal(scores(sup.store), want_scores[0])
    # issue 16.11: the history too - one point per user per day of event time, its newest
    # score - is exactly the uninterrupted run's, though flushes grouped rows differently
    pd.testing.assert_frame_equal(history(sup.store), want_scores[1])
    assert states(sup.paths, log) == want_states  # feature state byte for byte, offsets equal
    dead = [
        parse_dead_letter(r.value).source_offset for r in dead_letter_log(log).iter_records(2, 0)
    ]
    assert len(dead) == len(set(dead)) == 3  # replays did not dead-letter twice
    if cache == "evicting":  # the workers that ended normally say their caches filled
        ended = [json.loads(f.read_text()) for f in sup.paths.workers.glob("*.summary.json")]
        assert ended and sum(s["writer"]["evictions"] for s in ended) > 0


def test_a_worker_whose_writer_cache_fills_ends_equal_to_an_uninterrupted_run(tmp_path, world, model) -> None:
    """A writer cache that fills many times (each full cache writes the closed history
    points and keeps each user's newest row pending, ``Writer._evict``): the same scores
    (with their reasons) and history as the reference run, whose cache never fills."""
    log, want_scores, _ = world
    paths = StreamPaths(tmp_path / "data", "test")
    publish(paths.champion, export_model(model, "1", model_fs(), paths.models))
    with Store(f"sqlite:///{tmp_path / 'evicting.db'}") as store:
        cfg = StreamConfig(group="test", batch_size=BATCH, max_wait_s=0.0, checkpoint_interval_s=3600,
                           flush_interval_s=3600, max_pending_rows=2_000)  # fmt: skip
        worker = Worker("w", log, store, paths, cfg, partitions=range(4))
        worker.run(until_caught_up=True)
        assert worker.writer.stats["evictions"] >= 5
        pd.testing.assert_frame_equal(scores(store), want_scores[0])
        pd.testing.assert_frame_equal(history(store), want_scores[1])


def test_autoscaler_scales_up_and_down_with_clean_handover(tmp_path, world, model) -> None:
    log, want_scores, want_states = world
    sup = _supervisor(
        tmp_path,
        model,
        workers=1,
        min_workers=1,
        max_workers=2,
        autoscale=True,
        autoscale_interval_s=1.0,
        lag_threshold=5_000,
        cooldown_s=0.0,
        scale_down_stabilization_s=2.0,
        checkpoint_interval_s=1.0,
        max_events_per_s=1_000.0,
    )
    th, out = run_in_thread(sup, until_caught_up=True, max_seconds=150)
    th.join(timeout=180)
    assert not th.is_alive() and "error" not in out, out.get("error")
    decisions = sup.store.decisions_since()
    actions = decisions["action"].tolist()
    assert "scale_up" in actions and "scale_down" in actions
    assert actions.index("scale_up") < len(actions) - 1 - actions[::-1].index("scale_down")
    assert decisions["reason"].str.contains("lag").all()
    summaries = [json.loads(p.read_text()) for p in sup.paths.workers.glob("*.summary.json")]
    assert len(summaries) >= 2  # w0 and w1 both worked and both exited cleanly
    total = sum(log.end_offset(p) for p in range(4))
    assert sum(s["events"] for s in summaries) == total  # no record processed twice or lost
    pd.testing.assert_frame_equal(scores(sup.store), want_scores[0])
    pd.testing.assert_frame_equal(history(sup.store), want_scores[1])
    assert states(sup.paths, log) == want_states
    assert sup.store.assignments().empty  # drained: the group is empty again


def test_a_corrupt_checkpoint_stops_the_group_with_the_file_named(tmp_path, model) -> None:
    from pipeline.errors import StreamError

    simulated_log(tmp_path / "data" / "log", users=100, days=5, partitions=2, seed=1).close()
    sup = _supervisor(tmp_path, model, workers=1, autoscale=False)
    sup.paths.checkpoints.mkdir(parents=True)
    bad = sup.paths.checkpoint(1)
    bad.write_bytes(b"CHURNCK\x01 torn")
    with pytest.raises(StreamError) as exc:
        sup.run(max_seconds=120)
    assert str(bad) in str(exc.value) and "delete it" in str(exc.value)
    assert not sup.procs  # nothing left running


def test_caught_up_the_group_finishes_the_drift_check_in_flight(tmp_path, model) -> None:
    """`churn stream --until-caught-up` drained its workers with SIGTERM the moment the log
    was read: the drift leader's running check (Evidently is still importing in its child
    process when a small log is caught up) was ended with no trace. Caught up, the
    supervisor now sends SIGUSR1 and the check finishes and is stored."""
    import numpy as np

    from pipeline.drift.config import DriftConfig
    from pipeline.features.registry import FEATURE_NAMES

    simulated_log(tmp_path / "data" / "log", users=300, days=12, partitions=2, seed=4).close()
    reference = pd.DataFrame(np.random.default_rng(1).gamma(2.0, 2.0, (400, len(FEATURE_NAMES))),
                             columns=list(FEATURE_NAMES))  # fmt: skip
    drift = DriftConfig(warmup_days=5, min_rows=20, full_report_every=0)  # the production executor: a process
    sup = _supervisor(tmp_path, model, drift=drift, reference=reference, workers=1, autoscale=False)
    summary = sup.run(until_caught_up=True, max_seconds=240)
    assert summary["events"] > 0
    runs = sup.store.drift_runs(status=None)
    assert len(runs) >= 1 and runs.status.iloc[-1] == "checked", runs[["status", "status_reason"]]
    assert not sup.procs
