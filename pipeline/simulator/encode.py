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
    cols: DayColumns, user_ids: list[str], id_prefix: str, seq0: int
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """Sort by event time (stable: generation order breaks ties) and format lines.

    Returns the user index and type code of every line, and the lines themselves.
    Event ids are ``<prefix>-<sequence>``; the sequence continues across days.
    """
    n = len(cols)
    order = np.argsort(cols.ts, kind="stable")
    ts, user, etype = cols.ts[order], cols.user[order], cols.etype[order]
    num, cat, cat2 = cols.num[order], cols.cat[order], cols.cat2[order]
    stamps = np.datetime_as_string(ts.astype("datetime64[s]"), unit="s")
    out = np.empty(n, dtype=object)
    head = '{"type":"%s","event_id":"' + id_prefix + '-%d","user_id":"%s","ts":"%sZ","schema_version":1'
    for code, name in enumerate(TYPE_NAMES):
        idx = np.flatnonzero(etype == code)
        if not len(idx):
            continue
        h = [
            head % (name, seq0 + i, user_ids[u], s)
            for i, u, s in zip(idx.tolist(), user[idx].tolist(), stamps[idx].tolist(), strict=True)
        ]
        out[idx] = _tails(code, h, num[idx], cat[idx], cat2[idx])
    return user, etype, out.tolist()


def _tails(code: int, heads: list[str], num, cat, cat2) -> list[bytes]:
    if code == SIGNUP:
        return [f'{h},"plan":"{PLANS[c]}"}}'.encode() for h, c in zip(heads, cat.tolist(), strict=True)]
    if code == SESSION:
        return [
            f'{h},"watch_minutes":{m!r},"device":"{DEVICES[d]}"}}'.encode()
            for h, m, d in zip(heads, np.round(num, 1).tolist(), cat.tolist(), strict=True)
        ]
    if code == PAYMENT:
        return [
            f'{h},"amount":{a!r},"plan":"{PLANS[c]}"}}'.encode()
            for h, a, c in zip(heads, np.round(num, 2).tolist(), cat.tolist(), strict=True)
        ]
    if code == PAYMENT_FAILED:
        return [
            f'{h},"amount":{a!r},"reason":"{FAIL_REASONS[c]}"}}'.encode()
            for h, a, c in zip(heads, np.round(num, 2).tolist(), cat.tolist(), strict=True)
        ]
    if code == PLAN_CHANGE:
        return [
            f'{h},"from_plan":"{PLANS[a]}","to_plan":"{PLANS[b]}"}}'.encode()
            for h, a, b in zip(heads, cat.tolist(), cat2.tolist(), strict=True)
        ]
    if code == SUPPORT_TICKET:
        return [f'{h},"category":"{TICKET_CATEGORIES[c]}"}}'.encode() for h, c in zip(heads, cat.tolist(), strict=True)]
    return [f'{h},"reason":"{CANCEL_REASONS[c]}"}}'.encode() for h, c in zip(heads, cat.tolist(), strict=True)]
