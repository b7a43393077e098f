"""The stream's gate in front of the feature state: future-dated events and duplicates.

* **Future-dated** (``ts`` more than ``max_skew`` ahead of the injected clock): one such
  event would move the partition watermark years ahead, after which every real event
  is "late" and users are scored as of that date. It is dead-lettered with the reason
  ``future event: ...`` and never reaches the state, so it never moves the watermark.
* **Duplicates** (an event id already applied in the partition, within a bounded
  window): dropped and counted (:attr:`Admission.duplicates`); the first copy was
  applied, so the second is not an error to investigate, only a number to watch.

The dedup window of a partition remembers the ids of its last ``window`` to ``2 *
window`` admitted events (two generations of ``window`` ids; the older one is dropped
when the newer fills). Whether an event is a duplicate depends only on the records
before it in the partition, not on how they were batched, and the window is saved in
the partition's checkpoint with the features: a worker killed at any instant and
restarted from its checkpoint decides exactly as an uninterrupted run.

>>> gate = Admission(FakeClock(), max_skew=timedelta(days=1), window=100_000)  # doctest: +SKIP
>>> engine.process(p, values, first_offset=offset, dlq=dlq, admit=gate)         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
import numpy as np

from pipeline.clock import Clock
from pipeline.errors import ConfigError, EventDecodeError, FeatureError
from pipeline.features.columns import EventColumns
from pipeline.features.timebase import EPOCH

_US = timedelta(microseconds=1)
_NONE = np.zeros(0, np.int64)


class FutureEventError(EventDecodeError):
    """A valid event dated too far ahead of the clock; dead-lettered, never applied."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.field = "$.ts"
        self.value = None
        Exception.__init__(self, reason)


class _WindowDoc(msgspec.Struct, array_like=True):
    size: int
    current: list[str]
    previous: list[str]


_ENCODER = msgspec.msgpack.Encoder()
_DOC_HEAD = b"\x93"  # msgpack fixarray of _WindowDoc's 3 fields: a struct with array_like=True


def _array_head(n: int) -> bytes:
    """The msgpack header of an ``n``-element array (fixarray, array 16, array 32)."""
    if n < 16:
        return bytes((0x90 | n,))
    return b"\xdc" + n.to_bytes(2, "big") if n < 2**16 else b"\xdd" + n.to_bytes(4, "big")


class _Encoded:
    """The msgpack encodings of one generation's ids, in the order they were added, kept
    with the set they encode (its ``id`` and how many ids were added)."""

    __slots__ = ("count", "owner", "parts")

    def __init__(self, owner: set[str]) -> None:
        self.owner = id(owner)
        self.count = 0
        self.parts: list[bytes] = []

    @classmethod
    def of(cls, enc: _Encoded | None, ids: set[str]) -> _Encoded:
        """``enc`` if it encodes ``ids``, else ``ids`` encoded afresh."""
        if enc is not None and enc.encodes(ids):
            return enc
        fresh = cls(ids)
        fresh.add(list(ids))
        return fresh

    def add(self, ids: list[str]) -> None:
        if ids:
            self.parts.append(_ENCODER.encode(ids)[len(_array_head(len(ids))) :])
            self.count += len(ids)

    def encodes(self, ids: set[str]) -> bool:
        return self.owner == id(ids) and self.count == len(ids)

    def array(self) -> bytes:
        body = b"".join(self.parts)
        self.parts = [body]  # joined once: the next checkpoint appends to one part
        return _array_head(self.count) + body


@dataclass
class DedupWindow:
    """Event ids of the last ``size`` to ``2 * size`` events admitted in one partition.

    Each generation's msgpack encoding is built as its ids are admitted (one encode call
    per batch), so a checkpoint's :meth:`to_bytes` joins bytes instead of encoding 50,000
    to 100,000 ids in the batch loop (bench_stream: 8-26 ms per partition per checkpoint,
    as much as the feature state's snapshot). ``current`` and ``previous`` are changed by
    this class only; a window built otherwise (``from_bytes``, a test) is encoded afresh
    the first time."""

    size: int
    current: set[str] = field(default_factory=set)
    previous: set[str] = field(default_factory=set)
    _current_enc: _Encoded | None = field(default=None, repr=False, compare=False)
    _previous_enc: _Encoded | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.current:  # tracked from the first id (else encoded at the first to_bytes)
            self._current_enc = _Encoded(self.current)

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.current or event_id in self.previous

    def admit(self, ids: list[str]) -> list[int]:
        """Remember ``ids`` in order; return the positions of duplicates (not remembered
        again), each judged against the ids before it."""
        cur = self.current
        if len(cur) + len(ids) <= self.size and cur.isdisjoint(ids) and self.previous.isdisjoint(ids):
            # the common case: no id remembered, and room for all (no rotation): added in
            # one C call, and no duplicate within the batch iff the set grew by all of them
            # (no set of the batch built first: its ids hashed and inserted twice)
            before = len(cur)
            cur.update(ids)
            if len(cur) - before == len(ids):
                if self._current_enc is not None:
                    self._current_enc.add(ids)
                return []
            cur.difference_update(ids)  # a duplicate within the batch: as it was, then one by one
        elif len(set(ids)) == len(ids) and self.current.isdisjoint(ids) and self.previous.isdisjoint(ids):
            self._extend(ids)  # no duplicate, with a rotation: no per-id loop
            return []
        dups = []
        for i, event_id in enumerate(ids):
            if event_id in self.current or event_id in self.previous:
                dups.append(i)
            else:
                self._extend([event_id])
        return dups

    def _extend(self, ids: list[str]) -> None:
        """Add ``ids`` (distinct, none remembered yet), rotating when ``current`` fills."""
        while ids:
            room = self.size - len(self.current)
            if room <= 0:
                self._previous_enc = self._current_enc  # still the encoding of the older set
                self.previous, self.current = self.current, set()
                self._current_enc = _Encoded(self.current)
                continue
            part = ids if len(ids) <= room else ids[:room]
            self.current.update(part)
            if self._current_enc is not None:
                self._current_enc.add(part)
            ids = ids[len(part) :]

    def to_bytes(self) -> bytes:
        """The window as a ``_WindowDoc`` (msgpack; each generation's ids in the order
        they were admitted)."""
        cur = self._current_enc = _Encoded.of(self._current_enc, self.current)
        prev = self._previous_enc = _Encoded.of(self._previous_enc, self.previous)
        return b"".join((_DOC_HEAD, _ENCODER.encode(self.size), cur.array(), prev.array()))

    @classmethod
    def from_bytes(cls, raw: bytes) -> DedupWindow:
        try:
            doc = msgspec.msgpack.decode(raw, type=_WindowDoc)
        except msgspec.DecodeError as exc:
            raise FeatureError(f"dedup window is unreadable ({exc})") from None
        return cls(doc.size, set(doc.current), set(doc.previous))


class Admission:
    """The gate, for every partition of one worker (``engine.process(..., admit=gate)``)."""

    def __init__(self, clock: Clock, max_skew: timedelta = timedelta(days=1), window: int = 50_000) -> None:
        if max_skew < timedelta(0):
            raise ConfigError(f"max_skew={max_skew} must be >= 0 (how far ahead of the clock an event may be)")
        if window < 1:
            raise ConfigError(f"dedup window={window} must be >= 1 (event ids remembered per partition)")
        self.clock = clock
        self.max_skew = max_skew
        self.window = window
        self.windows: dict[int, DedupWindow] = {}
        self.duplicates = 0  # dropped duplicates, all partitions, since start
        self.future = 0  # dead-lettered future events, all partitions, since start
        self._error = FutureEventError(
            f"future event: more than {max_skew} ahead of the clock; not applied to features"
        )

    def __call__(self, partition: int, cols: EventColumns) -> tuple[np.ndarray, list[tuple[int, EventDecodeError]]]:
        limit = (self.clock.now() - EPOCH + self.max_skew) // _US
        n = len(cols)
        if not n:
            return _NONE, []
        if int(cols.ts.max()) <= limit:  # the common case: nothing from the future
            ahead, rejected, rows = _NONE, [], np.arange(n)
        else:
            ahead = np.flatnonzero(cols.ts > limit)
            rejected = [(r, self._error) for r in ahead.tolist()]
            rows = np.setdiff1d(np.arange(n), ahead, assume_unique=True)
        dups: list[int] = []
        if cols.event_ids:
            ids = cols.event_ids if not len(ahead) else [cols.event_ids[i] for i in rows.tolist()]
            dups = self.window_of(partition).admit(ids)
            if dups:
                rows = np.delete(rows, dups)
        self.future += len(ahead)
        self.duplicates += len(dups)
        return rows, rejected

    def window_of(self, partition: int) -> DedupWindow:
        w = self.windows.get(partition)
        if w is None:
            w = self.windows[partition] = DedupWindow(self.window)
        return w

    def snapshot(self, partition: int) -> bytes:
        return self.window_of(partition).to_bytes()

    def restore(self, partition: int, raw: bytes) -> None:
        """Restore a partition's window from a checkpoint (empty bytes: a fresh window).
        A window saved with another size is kept whole and trimmed as new ids come."""
        w = DedupWindow.from_bytes(raw) if raw else DedupWindow(self.window)
        w.size = self.window
        self.windows[partition] = w

    def drop(self, partition: int) -> None:
        """Forget a partition handed over to another worker."""
        self.windows.pop(partition, None)
