"""Columnar day batch -> JSON event lines, without building one object per event.

The simulator produces each day as numpy columns; formatting them straight into the
contract's JSON (byte-identical to ``pipeline.events.encode`` for the same event) is
what makes history generation run at hundreds of thousands of events per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.events import PLANS
from pipeline.simulator.scenarios import DEVICES

SIGNUP, SESSION, PAYMENT, PAYMENT_FAILED, PLAN_CHANGE, SUPPORT_TICKET, CANCEL = range(7)
TYPE_NAMES = ("signup", "session", "payment", "payment_failed", "plan_change", "support_ticket", "cancel")
FAIL_REASONS = ("insufficient_funds", "card_expired", "processing_error")
TICKET_CATEGORIES = ("billing", "playback", "account", "content")
CANCEL_REASONS = ("voluntary", "involuntary")


@dataclass
class DayColumns:
    """One simulated day's events as parallel columns (any order)."""

    ts: np.ndarray  # int64 epoch seconds
    user: np.ndarray  # int64 user index
    etype: np.ndarray  # int8 type code
    num: np.ndarray  # float64: watch minutes / amount
    cat: np.ndarray  # int16: device / plan / reason / category / from_plan
    cat2: np.ndarray  # int16: to_plan

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def concat(parts: list[DayColumns]) -> DayColumns:
        return DayColumns(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("ts", "user", "etype", "num", "cat", "cat2")


def columns(ts, user, etype, num=None, cat=None, cat2=None) -> DayColumns:
    n = len(ts)
    return DayColumns(
        np.asarray(ts, dtype=np.int64),
        np.asarray(user, dtype=np.int64),
        np.full(n, etype, dtype=np.int8) if np.isscalar(etype) else np.asarray(etype, np.int8),
        np.zeros(n) if num is None else np.asarray(num, dtype=np.float64),
        np.zeros(n, np.int16) if cat is None else np.asarray(cat, dtype=np.int16),
        np.zeros(n, np.int16) if cat2 is None else np.asarray(cat2, dtype=np.int16),
    )


def encode_day(
    cols: DayColumns, user_keys: list[bytes], id_prefix: str, seq0: int
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Sort by event time (stable: generation order breaks ties) and format lines.

    Returns the user index and type code of every line, and the lines themselves.
    Event ids are ``<prefix>-<sequence>``; the sequence continues across days. One
    bytes ``%`` template per event type keeps it to a single pass per line.
    """
    n = len(cols)
    order = np.argsort(cols.ts, kind="stable")
    ts, user, etype = cols.ts[order], cols.user[order], cols.etype[order]
    num, cat, cat2 = cols.num[order], cols.cat[order], cols.cat2[order]
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s").astype("S19")
    out = np.empty(n, dtype=object)
    prefix = id_prefix.encode()
    for code, name in enumerate(TYPE_NAMES):
        idx = np.flatnonzero(etype == code)
        if not len(idx):
            continue
        head = (
            b'{"type":"' + name.encode() + b'","event_id":"' + prefix
            + b'-%d","user_id":"%s","ts":"%sZ","schema_version":1,'
        )
        tmpl, extra = _TAILS[code]
        fields = [(seq0 + idx).tolist(), [user_keys[u] for u in user[idx].tolist()], stamps[idx].tolist()]
        fields += [f(num[idx], cat[idx], cat2[idx]) for f in extra]
        t = head + tmpl
        out[idx] = [t % row for row in zip(*fields, strict=True)]
    return user, etype, out.tolist()


def _names(names: tuple[str, ...]):
    table = np.array([x.encode() for x in names], dtype=object)
    return lambda codes: table[codes].tolist()


_PLAN, _DEV = _names(PLANS), _names(DEVICES)
_FAIL, _TICKET, _CANCEL = _names(FAIL_REASONS), _names(TICKET_CATEGORIES), _names(CANCEL_REASONS)
_TAILS = {
    SIGNUP: (b'"plan":"%s"}', [lambda n, c, c2: _PLAN(c)]),
    SESSION: (b'"watch_minutes":%r,"device":"%s"}', [lambda n, c, c2: np.round(n, 1).tolist(), lambda n, c, c2: _DEV(c)]),
    PAYMENT: (b'"amount":%r,"plan":"%s"}', [lambda n, c, c2: np.round(n, 2).tolist(), lambda n, c, c2: _PLAN(c)]),
    PAYMENT_FAILED: (b'"amount":%r,"reason":"%s"}', [lambda n, c, c2: np.round(n, 2).tolist(), lambda n, c, c2: _FAIL(c)]),
    PLAN_CHANGE: (b'"from_plan":"%s","to_plan":"%s"}', [lambda n, c, c2: _PLAN(c), lambda n, c, c2: _PLAN(c2)]),
    SUPPORT_TICKET: (b'"category":"%s"}', [lambda n, c, c2: _TICKET(c)]),
    CANCEL: (b'"reason":"%s"}', [lambda n, c, c2: _CANCEL(c)]),
}
