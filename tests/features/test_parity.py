"""Parity: the stream path and the batch replay give identical vectors at the same times.

Stream: micro-batches of random sizes through ``FeatureEngine.process``, a
snapshot/restore (to a fresh engine, from bytes) in the middle, and after each batch a
read at the partition watermark of the users it touched (what the stream scores) and of
every user. Batch: ``replay_partition``
with those watermarks as cutoffs. The simulated log is perturbed so that some events
arrive out of order, a few beyond the allowed lateness.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from pipeline.events import event_time
from pipeline.features.engine import FeatureEngine
from pipeline.features.replay import replay_partition
from pipeline.features.state import FeatureState
from pipeline.features.timebase import HOUR_US, to_us
from pipeline.log import MemoryLog
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history

LATENESS = timedelta(hours=24)


@pytest.fixture(scope="module")
def shuffled_log(tmp_path_factory) -> MemoryLog:
    """A simulated history whose records arrive with random delays (some > lateness)."""
    src = MemoryLog(num_partitions=3)
    simulate_history(Simulator(SimConfig(users=1200, days=75, seed=11)), src, tmp_path_factory.mktemp("sim"))
    rng = np.random.default_rng(5)
    out = MemoryLog(num_partitions=3)
    for p in range(3):
        values, _ = src.fetch_values(p, 0, max_records=10**7, max_bytes=1 << 40)
        ts = np.array([to_us(event_time(v)) for v in values], dtype=np.int64)
        delay = np.where(rng.random(len(ts)) < 0.02, rng.integers(0, 30 * HOUR_US, len(ts)), 0)
        order = np.argsort(ts + delay, kind="stable")
        out.append(p, [values[i] for i in order.tolist()])
    return out


def _stream(log: MemoryLog, p: int, rng: np.random.Generator) -> tuple[list, FeatureEngine]:
    engine = FeatureEngine(log.num_partitions, LATENESS)
    end = log.end_offset(p)
    restore_at = int(rng.integers(end // 4, 3 * end // 4))
    reads, offset = [], 0
    while offset < end:
        values, nxt = log.fetch_values(p, offset, max_records=int(rng.integers(1, 1500)))
        out = engine.process(p, values, first_offset=offset)
        following, _ = log.fetch_values(p, nxt, max_records=1)
        # compare where the batch boundary is clean (the next record is strictly newer)
        if out.touched and (not following or event_time(following[0]) > out.watermark):
            touched = engine.read(p, out.watermark, out.touched)  # what the stream scores
            everyone = engine.read(p, out.watermark)
            assert np.array_equal(touched.values, everyone.frame().loc[out.touched].to_numpy()[:, 1:].astype(float))
            reads.append(everyone)
        if offset <= restore_at < nxt:  # checkpoint + crash + restart from the bytes
            blob = engine.snapshot(p)
            engine = FeatureEngine(log.num_partitions, LATENESS)
            engine.restore(p, blob)
        offset = nxt
    return reads, engine


@pytest.mark.parametrize("p", [0, 1, 2])
def test_stream_and_batch_replay_give_identical_vectors(shuffled_log, p):
    reads, engine = _stream(shuffled_log, p, np.random.default_rng(100 + p))
    assert len(reads) > 15 and engine.state(p).late_total > 0

    batch = FeatureState(LATENESS)
    got = []
    replay_partition(
        shuffled_log, p, batch, [to_us(r.t) for r in reads],
        on_cutoff=lambda t, st: got.append(st.read(t, reads[len(got)].users)), batch=4096,
    )
    assert len(got) == len(reads)
    for s, b in zip(reads, got, strict=True):
        assert s.t == b.t and s.users == b.users
        assert np.array_equal(s.values, b.values) and np.array_equal(s.active, b.active)
    # not only the vectors read: the whole state is byte-identical at the end
    assert batch.snapshot() == engine.snapshot(p)
