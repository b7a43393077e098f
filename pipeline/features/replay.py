"""Batch path: replay a partition log through the feature engine, reading at cutoffs.

Each partition is read from its first stored offset in log order, in micro-batches,
through the same :class:`FeatureState` the stream uses. A cutoff ``t`` is read *as the
replay passes it*: just before applying the first record with ``ts > t``. So the
vector at ``t`` holds every record with ``ts <= t`` that arrived before the log moved
past ``t`` and nothing later - exactly what the stream had at that moment. (A record
with ``ts <= t`` that arrives after a later one is a late event; the stream would not
have had it at ``t`` either, so training sees what serving saw.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.features.columns import EventColumns, decode_columns
from pipeline.features.state import FeatureState
from pipeline.features.timebase import NONE_US
from pipeline.log.base import PartitionLog

OnCutoff = Callable[[int, FeatureState], None]  # (cutoff in epoch microseconds, state)
OnColumns = Callable[[EventColumns], None]  # every decoded batch, before it is applied


@dataclass
class ReplayStats:
    partition: int
    records: int = 0
    invalid: int = 0
    late: int = 0
    start_offset: int = 0
    next_offset: int = 0
    min_ts_us: int = -NONE_US - 1  # +inf until a record is seen
    max_ts_us: int = NONE_US
    cutoffs_read: list[int] = field(default_factory=list)


def replay_partition(
    log: PartitionLog,
    partition: int,
    state: FeatureState,
    cutoffs_us: Sequence[int] = (),
    on_cutoff: OnCutoff | None = None,
    on_columns: OnColumns | None = None,
    stop_after_last_cutoff: bool = False,
    batch: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Replay ``partition`` into ``state``; call ``on_cutoff(t, state)`` at each cutoff.

    Cutoffs must be ascending. Cutoffs the log never passes are read at its end (every
    record then has ``ts <= t``). With ``stop_after_last_cutoff`` the replay ends as soon
    as the last cutoff is read (for "features at t" queries).
    """
    cut = [int(c) for c in cutoffs_us]
    if any(b < a for a, b in zip(cut, cut[1:], strict=False)):
        raise ValueError("cutoffs must be ascending")
    stats = ReplayStats(partition, start_offset=log.start_offset(partition))
    offset, ci = stats.start_offset, 0
    while True:
        if stop_after_last_cutoff and ci == len(cut):
            break
        values, nxt = log.fetch_values(partition, offset, max_records=batch)
        if not values:
            break
        decoded = decode_columns(values, state.spec.action_index)
        cols = decoded.columns
        stats.records += len(values)
        stats.invalid += len(decoded.invalid)
        if len(cols):
            stats.min_ts_us = min(stats.min_ts_us, int(cols.ts.min()))
            stats.max_ts_us = max(stats.max_ts_us, int(cols.ts.max()))
        if on_columns is not None:
            on_columns(cols)
        lo = 0
        while ci < len(cut):
            past = np.flatnonzero(cols.ts[lo:] > cut[ci])
            if not len(past):
                break
            hi = lo + int(past[0])
            stats.late += len(state.update(cols.slice(lo, hi)).late)
            if on_cutoff is not None:
                on_cutoff(cut[ci], state)
            stats.cutoffs_read.append(cut[ci])
            ci += 1
            lo = hi
        if lo < len(cols):
            stats.late += len(state.update(cols.slice(lo, len(cols))).late)
        offset = nxt
        if progress is not None:
            progress(len(values))
    for t in cut[ci:]:
        if on_cutoff is not None:
            on_cutoff(t, state)
        stats.cutoffs_read.append(t)
    stats.next_offset = offset
    return stats
