"""The feature engine of a topic: one :class:`FeatureState` per log partition.

A user's state lives with its partition (``murmur2(user_id) % N``), so a consumer that
owns some partitions owns exactly those users' states, and checkpoints them per
partition next to the partition's offset.

The streaming path in fifteen lines::

    engine = FeatureEngine(num_partitions=log.num_partitions)
    values, nxt = log.fetch_values(p, offset)
    out = engine.process(p, values, first_offset=offset, dlq=dead_letters)
    frame = engine.read(p, out.watermark, out.touched)   # vectors of the touched users
    checkpoint[p] = (nxt, engine.snapshot(p))

Batch (training) replays the same log through the same engine: see
:mod:`pipeline.features.replay`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.errors import EventDecodeError, FeatureError, LateEventError
from pipeline.features.columns import EventColumns, decode_columns
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec
from pipeline.features.state import FeatureFrame, FeatureState

OnCutoff = Callable[[int, FeatureState], None]  # (cutoff in epoch microseconds, state)


class Admit(Protocol):
    """A gate before the state (the stream's :class:`pipeline.stream.admission.Admission`):
    returns the rows of ``cols`` to apply and ``(row, error)`` for rows to dead-letter;
    rows in neither are dropped (duplicates, which the gate counts)."""

    def __call__(self, partition: int, cols: EventColumns) -> tuple[np.ndarray, list[tuple[int, EventDecodeError]]]: ...


class DeadLetterSink(Protocol):
    """What :class:`pipeline.log.DeadLetters` offers: ``send(partition, [(offset, raw, err)])``."""

    def send(self, partition: int, items: Sequence[tuple[int, bytes, EventDecodeError]]) -> None: ...


@dataclass(frozen=True)
class BatchOutcome:
    """One processed micro-batch. Offsets are absolute log offsets."""

    applied: int
    invalid: list[tuple[int, EventDecodeError]]  # (offset, error)
    late: list[int]  # offsets of late (not applied) events
    touched: list[str]
    watermark: datetime | None
    touched_slots: np.ndarray | None = None  # the touched users' state slots (same order)
    slot_space: int | None = None  # the serial of the state those slots are of (FeatureState.serial)


class FeatureEngine:
    def __init__(
        self, num_partitions: int, lateness: timedelta = timedelta(hours=24), spec: FeatureSpec = DEFAULT_SPEC
    ) -> None:
        """``spec``: the topic's feature spec (:func:`pipeline.features.spec.spec_for`); it decides the
        action vocabulary and the columns read."""
        if num_partitions < 1:
            raise FeatureError(f"num_partitions must be >= 1 (got {num_partitions})")
        FeatureState(lateness, capacity=16)  # validate lateness now, not at first event
        self.num_partitions = num_partitions
        self.lateness = lateness
        self.spec = spec
        self._states: dict[int, FeatureState] = {}
        self._cutoffs: dict[int, tuple[int, OnCutoff]] = {}  # partition -> (t, callback); see set_cutoff

    def state(self, partition: int) -> FeatureState:
        if not 0 <= partition < self.num_partitions:
            raise FeatureError(f"partition {partition} out of range 0..{self.num_partitions - 1}")
        st = self._states.get(partition)
        if st is None:
            st = self._states[partition] = FeatureState(self.lateness, spec=self.spec)
        return st

    def process(
        self, partition: int, values: Sequence[bytes], first_offset: int = 0, dlq: DeadLetterSink | None = None,
        admit: Admit | None = None,
    ) -> BatchOutcome:
        """Decode raw records, apply the valid ones; invalid and late records go to ``dlq``.
        With ``admit``, only the rows it keeps reach the state; its rejects go to ``dlq``
        too (listed with the invalid ones)."""
        st = self.state(partition)
        decoded = decode_columns(values, self.spec.action_index)
        cols, index = decoded.columns, decoded.valid_index
        invalid = [(first_offset + i, e) for i, e in decoded.invalid]
        if admit is not None and len(cols):
            keep, rejected = admit(partition, cols)
            if len(keep) < len(cols):
                cols, index = cols.take(keep), index[keep]
            if rejected:
                invalid += [(first_offset + int(decoded.valid_index[r]), e) for r, e in rejected]
                invalid.sort(key=lambda it: it[0])
        cut = self._cutoffs.get(partition) if self._cutoffs else None
        if cut is None or not len(cols) or int(cols.ts.max()) <= cut[0]:
            result = st.update(cols)
        else:
            result = self._update_at_cutoffs(partition, st, cols)
        late_pos = index[result.late]
        late = (first_offset + late_pos).tolist()
        if dlq is not None and (invalid or late):
            items = [(off, bytes(values[off - first_offset]), e) for off, e in invalid]
            # one stable reason (dead letters are counted by reason); the record keeps its ts
            err = LateEventError(
                f"late event: more than {st.lateness} behind the partition watermark; not applied to features"
            )
            items += [(first_offset + pos, bytes(values[pos]), err) for pos in late_pos.tolist()]
            items.sort(key=lambda it: it[0])
            dlq.send(partition, items)
        return BatchOutcome(result.applied, invalid, late, result.touched, result.watermark, result.touched_slots,
                            st.serial)  # fmt: skip

    def set_cutoff(self, partition: int, t_us: int | None, on_cutoff: OnCutoff | None = None) -> None:
        """Call ``on_cutoff(t_us, state)`` as the stream passes ``t_us`` in ``partition``:
        just before applying the first record with ``ts > t_us`` (a batch is split there),
        the same rule as the batch replay (:mod:`pipeline.features.replay`), so what the
        callback reads equals the training snapshot at that cutoff. One shot; the callback
        may set the next one. ``t_us=None`` clears it."""
        if t_us is None or on_cutoff is None:
            self._cutoffs.pop(partition, None)
        else:
            self._cutoffs[partition] = (int(t_us), on_cutoff)

    def _update_at_cutoffs(self, partition: int, st: FeatureState, cols: Any) -> Any:
        parts, lo = [], 0
        while (cut := self._cutoffs.get(partition)) is not None:
            past = np.flatnonzero(cols.ts[lo:] > cut[0])
            if not len(past):
                break
            hi = lo + int(past[0])
            if hi > lo:
                parts.append((lo, st.update(cols.slice(lo, hi))))
            del self._cutoffs[partition]
            cut[1](cut[0], st)
            lo = hi
        if lo < len(cols) or not parts:
            parts.append((lo, st.update(cols.slice(lo, len(cols)))))
        if len(parts) == 1 and parts[0][0] == 0:
            return parts[0][1]
        last = parts[-1][1]
        return type(last)(
            sum(r.applied for _, r in parts), np.concatenate([r.late + off for off, r in parts]),
            pd.unique(np.concatenate([r.touched_slots for _, r in parts])), last.watermark, st.user_ids,
        )

    def read(
        self, partition: int, t: datetime | int, users: Sequence[str] | None = None, slots: np.ndarray | None = None
    ) -> FeatureFrame:
        """Vectors of ``users`` at ``t``; ``slots``: their state slots when known (a
        :class:`BatchOutcome`'s ``touched_slots`` with its ``touched``), saving the lookup."""
        return self.state(partition).read(t, users, slots=slots)

    def snapshot(self, partition: int) -> bytes:
        return self.state(partition).snapshot()

    def restore(self, partition: int, blob: bytes) -> None:
        st = FeatureState.restore(blob, self.spec)
        if st.lateness != self.lateness:
            raise FeatureError(
                f"snapshot of partition {partition} was taken with lateness {st.lateness}, the engine "
                f"uses {self.lateness}; use the same lateness or rebuild by replaying the log"
            )
        self.state(partition)  # range check
        self._states[partition] = st

    @property
    def partitions(self) -> list[int]:
        return sorted(self._states)

    def late_total(self) -> int:
        return int(np.sum([s.late_total for s in self._states.values()], dtype=np.int64))
