"""Events as parallel columns: the engine's input, built once per micro-batch.

The engine never sees one Python object per event in its hot loop: a batch of decoded
events (or raw log values, decoded here with the contract's own strict decoder) becomes
a few numpy columns plus a list of user ids. Order is the arrival order and is kept:
it decides ties and lateness, exactly as applying the events one by one would.

Column meanings by type (``code`` = index in :data:`TYPE_NAMES`):

============== ============== ========================= ==================
type           ``num``        ``cat``                   ``cat2``
============== ============== ========================= ==================
signup         0              plan index                -1
session        watch_minutes  -1                        -1
payment        amount         plan index                -1
payment_failed amount         -1                        -1
plan_change    0              from-plan index           to-plan index
support_ticket 0              -1                        -1
cancel         0              0 voluntary, 1 involuntary -1
activity       value (0 none) action code (vocabulary)  -1
============== ============== ========================= ==================

An ``activity`` event's action is coded by its position in the topic's declared
vocabulary (:attr:`pipeline.features.spec.FeatureSpec.action_index`). Decoding with a
vocabulary is strict: an action outside it is an invalid record (dead-lettered with the
reason), because no feature of the topic could hold it. Without a vocabulary
(``actions=None``, e.g. scanning a log for its time range) the code is -1.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
import numpy as np
import pandas as pd

from pipeline import events as ev
from pipeline.errors import EventDecodeError, FeatureError
from pipeline.features.timebase import EPOCH

TYPE_NAMES: tuple[str, ...] = tuple(ev.EVENT_TYPES)
SIGNUP, SESSION, PAYMENT, PAYMENT_FAILED, PLAN_CHANGE, SUPPORT_TICKET, CANCEL, ACTIVITY = (
    TYPE_NAMES.index(n)
    for n in ("signup", "session", "payment", "payment_failed", "plan_change", "support_ticket", "cancel", "activity")
)
_CODE = {cls: i for i, cls in enumerate(ev.EVENT_TYPES.values())}
_PLAN = {p: i for i, p in enumerate(ev.PLANS)}
_REASON = {"voluntary": 0, "involuntary": 1}
_US = timedelta(microseconds=1)
_ACTIVITY = ev.Activity
# The contract's own types: same strict validation as pipeline.events.decode, minus the
# wrapper call per event (the error is rebuilt with decode() only for bad records).
_decoder = msgspec.json.Decoder(ev.Event)


@dataclass(frozen=True)
class EventColumns:
    user_ids: list[str]
    ts: np.ndarray  # int64 microseconds since the epoch (exact)
    code: np.ndarray  # int8 type code
    num: np.ndarray  # float64
    cat: np.ndarray  # int8
    cat2: np.ndarray  # int8
    event_ids: list[str] = field(default_factory=list)  # for deduplication (stream admission)

    def __len__(self) -> int:
        return len(self.user_ids)

    def slice(self, lo: int, hi: int) -> EventColumns:
        return EventColumns(
            self.user_ids[lo:hi], self.ts[lo:hi], self.code[lo:hi],
            self.num[lo:hi], self.cat[lo:hi], self.cat2[lo:hi], self.event_ids[lo:hi],
        )

    def take(self, rows: np.ndarray) -> EventColumns:
        """The rows ``rows`` (ascending positions), order kept."""
        pick = rows.tolist()
        return EventColumns(
            [self.user_ids[i] for i in pick], self.ts[rows], self.code[rows], self.num[rows],
            self.cat[rows], self.cat2[rows], [self.event_ids[i] for i in pick] if self.event_ids else [],
        )


@dataclass(frozen=True)
class Decoded:
    """A decoded batch: the valid events as columns, plus the invalid ones.

    ``valid_index[i]`` is the position in the input of column row ``i``; ``invalid`` lists
    ``(position, error)`` for records that failed the contract (dead-letter them).
    """

    columns: EventColumns
    valid_index: np.ndarray
    invalid: list[tuple[int, EventDecodeError]]


def from_events(events: Sequence[ev.Event], actions: Mapping[str, int] | None = None) -> EventColumns:
    """Columns of already-decoded contract events, in the given order.

    ``actions``: the vocabulary (action -> code); an action outside it raises
    :class:`~pipeline.errors.FeatureError` (decode raw values with :func:`decode_columns`
    to dead-letter such records instead)."""
    cols = _columns(events, actions)
    if actions is not None:
        bad = np.flatnonzero((cols.code == ACTIVITY) & (cols.cat < 0))
        if len(bad):
            raise FeatureError(str(undeclared(events[int(bad[0])].action, actions)))
    return cols


def _columns(events: Sequence[ev.Event], actions: Mapping[str, int] | None) -> EventColumns:
    """Columns; an activity whose action is not in ``actions`` (or without one) gets code -1."""
    n = len(events)
    types = [type(e) for e in events]
    code = np.fromiter(map(_CODE.__getitem__, types), np.int8, n)
    session = ev.Session
    num = np.fromiter([e.watch_minutes if t is session else 0.0 for e, t in zip(events, types, strict=True)], np.float64, n)
    cat = np.full(n, -1, np.int8)
    cat2 = np.full(n, -1, np.int8)
    rare = np.flatnonzero(code != SESSION)
    if len(rare):
        _fill_other_types(events, code, rare, num, cat, cat2, actions)
    return EventColumns([e.user_id for e in events], _micros([e.ts for e in events]), code, num, cat, cat2,
                        [e.event_id for e in events])


def _fill_other_types(events: Sequence[ev.Event], code: np.ndarray, rows: np.ndarray, num: np.ndarray,
                      cat: np.ndarray, cat2: np.ndarray, actions: Mapping[str, int] | None) -> None:  # fmt: skip
    """``num``/``cat``/``cat2`` of the non-session events ``rows``, one type at a time: a
    comprehension per field and one numpy assignment, not a Python branch per event (with
    numpy scalar comparisons, ~1.2 us an event). Sessions are most of the simulator's
    events, but another product's log (``churn import``) can be mostly activity events:
    ``_columns`` of 1,000-event batches, 70 % activities, 20 % payments, 10 % signups,
    1.16-1.61 -> 0.84-0.85 us an event; the simulator's mix 0.80-0.91 -> 0.59-0.71
    (the same columns, byte for byte)."""
    kinds = code[rows]
    for c in np.unique(kinds).tolist():
        at = rows[kinds == c]
        es = [events[i] for i in at.tolist()]
        if c == SIGNUP:
            cat[at] = [_PLAN[e.plan] for e in es]
        elif c == PAYMENT:
            num[at] = [e.amount for e in es]
            cat[at] = [_PLAN[e.plan] for e in es]
        elif c == PAYMENT_FAILED:
            num[at] = [e.amount for e in es]
        elif c == PLAN_CHANGE:
            cat[at] = [_PLAN[e.from_plan] for e in es]
            cat2[at] = [_PLAN[e.to_plan] for e in es]
        elif c == CANCEL:
            cat[at] = [_REASON[e.reason] for e in es]
        elif c == ACTIVITY:
            num[at] = [0.0 if e.value is None else e.value for e in es]
            if actions is not None:
                cat[at] = [actions.get(e.action, -1) for e in es]


_TIMESTAMP = datetime.timestamp
_FAST_S = 2.0**31  # seconds from the epoch below which timestamp() * 1e6 rounds exactly (2038)


def _micros(stamps: list[datetime]) -> np.ndarray:
    """Exact epoch microseconds of the contract events' times (aware, UTC: decoding
    requires a zone and ``_Event.__post_init__`` converts any other to UTC).

    Fast path (~0.2 us a stamp instead of pandas' ~0.3; pandas was ~10 % of the feature
    stage): an aware datetime's ``timestamp()`` is its exact microsecond offset divided by
    10**6, correctly rounded. Below 2**31 s that double is within 2**-23 s of the true
    value, so ``* 1e6`` is within 0.12 + 0.125 us of the integer offset and ``rint`` gives
    it exactly. Times outside +-2**31 s (after 2038-01-19), or a naive datetime first,
    go through pandas (with its own exact fallback outside years 1677-2262)."""
    if not stamps:
        return np.zeros(0, np.int64)
    if stamps[0].tzinfo is not None:
        secs = np.fromiter(map(_TIMESTAMP, stamps), np.float64, len(stamps))
        if secs.min() > -_FAST_S and secs.max() < _FAST_S:
            return np.rint(secs * 1e6).astype(np.int64)
    try:
        return pd.DatetimeIndex(stamps).as_unit("us").asi8
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        return np.fromiter(((t - EPOCH) // _US for t in stamps), np.int64, len(stamps))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one batch.

    Decoding 10,000 events allocates 10,000 GC-tracked objects, which triggers several
    collections that each walk every live object of the process (measured: decoding to
    columns ran at ~370k events/s with the collector on, ~720k/s paused). The decoded
    objects form no reference cycles, so reference counting frees them regardless; the
    previous collector state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def undeclared(action: str, actions: Mapping[str, int]) -> EventDecodeError:
    known = ", ".join(list(actions)[:8]) + (" ..." if len(actions) > 8 else "") or "none"
    return EventDecodeError(
        f"action not in the topic's declared vocabulary ({known}); declare it in the mapping's "
        "`actions` and re-import, or map it to the catch-all", "$.action", action,
    )


def decode_columns(values: Sequence[bytes], actions: Mapping[str, int] | None = None) -> Decoded:
    """Strictly decode raw log values (the event contract) straight into columns;
    with ``actions`` (the topic's vocabulary) an undeclared action is an invalid record."""
    with gc_paused():
        return _decode_columns(values, actions)


def _decode_columns(values: Sequence[bytes], actions: Mapping[str, int] | None) -> Decoded:
    decode = _decoder.decode
    try:  # the common case, no invalid record: one comprehension, no per-record bookkeeping
        events = [decode(raw) for raw in values]
        cols = _columns(events, actions)
        if actions is None or not np.any((cols.code == ACTIVITY) & (cols.cat < 0)):  # vectorised check
            return Decoded(cols, np.arange(len(events), dtype=np.int64), [])
    except Exception:  # noqa: BLE001 - some record is invalid: redo record by record
        pass
    events, keep = [], []
    invalid: list[tuple[int, EventDecodeError]] = []
    for i, raw in enumerate(values):
        try:
            e = decode(raw)
        except Exception:  # noqa: BLE001 - rebuilt as a typed, explained error
            err = ev.try_decode(raw)
            invalid.append((i, err if isinstance(err, EventDecodeError) else EventDecodeError(str(err))))
            continue
        if actions is not None and e.__class__ is _ACTIVITY and e.action not in actions:
            invalid.append((i, undeclared(e.action, actions)))
            continue
        events.append(e)
        keep.append(i)
    return Decoded(_columns(events, actions), np.asarray(keep, np.int64), invalid)
