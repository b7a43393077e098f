"""Events the source does not have but the contract needs: signups and inactivity churn.

* ``signup.synthesize: first_event``: a user without a signup event in the import (and
  not signed up by an earlier import, see the ledger's ``users.txt``) gets a ``signup``
  at the time of their first row (of any mapped type), ordered before that row, with the plan the mapping's
  ``signup.plan`` gives for that row (its ``default`` when empty). Id ``<file>-<row>-signup``.
* ``churn.definition: inactivity`` with ``inactive_days: N``: churn is the first moment a
  user has had no activity for N days. For every gap longer than N days between two
  consecutive events of a user, a ``cancel`` (reason ``voluntary``) is dated N days after
  the earlier event (id ``<file>-<row>-inactive``) and a ``signup`` (reactivation, id
  ``<file>-<row>-return``) at the later one. After a user's last event, the cancel is
  added only when the import's data reach that day (last event + N <= the newest event
  time of the import); otherwise the user is still active (censored), never guessed.
  The cancel is dated when the inactivity becomes observable, not back-dated to the last
  activity: nothing in the log is known before it could have been.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgspec
import numpy as np
import pandas as pd

from pipeline import events as ev
from pipeline.features.timebase import DAY_US
from pipeline.ingest.mapping import SourceMapping
from pipeline.ingest.transform import TYPE_CODE

SIGNUP, CANCEL = TYPE_CODE["signup"], TYPE_CODE["cancel"]
_enc = msgspec.json.Encoder()
_WHY = {"signup": "first row", "return": "reactivation", "inactive": "inactivity"}


@dataclass
class Synthesized:
    ucode: np.ndarray
    ts: np.ndarray
    code: np.ndarray
    seq: np.ndarray  # the anchor row's position in import order (tie-break)
    prio: np.ndarray  # 0: before the anchor at the same time (signups), 2: after
    anchor: np.ndarray  # the anchor row's source row number
    buf: bytes
    ends: np.ndarray
    counts: Counter[str] = field(default_factory=Counter)
    signed_up: set[str] = field(default_factory=set)  # users with a signup in this import


def _plan_default(m: SourceMapping) -> int:
    spec = m.signup_plan
    v = spec.const if spec is not None and spec.column is None else (spec.default if spec else None)
    return ev.PLANS.index(v) if v in ev.PLANS else 0


def synthesize(
    m: SourceMapping,
    ucode: np.ndarray,
    uniques: list[str],
    ts: np.ndarray,
    code: np.ndarray,
    row: np.ndarray,
    plan: np.ndarray,
    fidx: np.ndarray,
    file_keys: list[str],
    already_signed: set[str],
) -> Synthesized:
    """Synthesized events for the import's events (columns in import order)."""
    out_u: list[int] = []
    out_ts: list[int] = []
    out_code: list[int] = []
    out_seq: list[int] = []
    out_prio: list[int] = []
    events: list[ev._Event] = []
    counts: Counter[str] = Counter()
    fallback = _plan_default(m)
    has_signup = np.zeros(len(uniques), bool)
    has_signup[ucode[code == SIGNUP]] = True
    signed_up = {uniques[i] for i in np.flatnonzero(has_signup).tolist()}

    kinds: list[str] = []
    suffixes: list[str] = []

    def add(kind: str, i: np.ndarray, t: np.ndarray, u: np.ndarray, suffix: str) -> None:
        """Many events of one kind: anchor rows ``i``, times ``t``, user codes ``u``."""
        kinds.extend([kind] * len(i))
        suffixes.extend([suffix] * len(i))
        out_u.extend(u.tolist())
        out_ts.extend(t.tolist())
        out_seq.extend(i.tolist())
        out_code.extend([SIGNUP if kind == "signup" else CANCEL] * len(i))
        out_prio.extend([0 if kind == "signup" else 2] * len(i))

    if len(ts):
        act = np.flatnonzero((code != SIGNUP) & (code != CANCEL))
        o = act[np.lexsort((act, ts[act], ucode[act]))]  # by user, time, import order
        u_sorted = ucode[o]
        first = np.ones(len(o), bool)
        first[1:] = u_sorted[1:] != u_sorted[:-1]
        if m.synthesize_signup:  # at the first row of any type (a user may appear only to cancel)
            rest = np.flatnonzero(code != SIGNUP)
            oa = rest[np.lexsort((rest, ts[rest], ucode[rest]))]
            ua = ucode[oa]
            k = np.flatnonzero(np.r_[True, ua[1:] != ua[:-1]]) if len(oa) else np.zeros(0, np.int64)
            u = ua[k]
            need = ~has_signup[u]
            if already_signed:
                need &= np.fromiter((uniques[x] not in already_signed for x in u.tolist()), bool, len(u))
            i = oa[k[need]]
            add("signup", i, ts[i], u[need], "signup")
            signed_up.update(uniques[x] for x in u[need].tolist())
        if m.churn == "inactivity":
            gap = int(m.inactive_days) * DAY_US
            data_end = int(ts.max())
            t_sorted = ts[o]
            same = ~first[1:]
            k = np.flatnonzero(same & (t_sorted[1:] - t_sorted[:-1] > gap))
            i, j = o[k], o[k + 1]
            add("cancel", i, ts[i] + gap, u_sorted[k], "inactive")
            add("signup", j, ts[j], u_sorted[k], "return")
            last = np.ones(len(o), bool)
            last[:-1] = u_sorted[1:] != u_sorted[:-1]
            k = np.flatnonzero(last)
            k = k[ts[o[k]] + gap <= data_end]
            add("cancel", o[k], ts[o[k]] + gap, u_sorted[k], "inactive")
    stamps = pd.to_datetime(np.asarray(out_ts, np.int64), unit="us", utc=True).to_pydatetime()
    version, plans = ev.SCHEMA_VERSION, ev.PLANS
    sel = np.asarray(out_seq, np.int64)
    rows_sel, files_sel, plans_sel = row[sel].tolist(), fidx[sel].tolist(), plan[sel].tolist()
    out_anchor = rows_sel
    for k, (kind, suffix, u) in enumerate(zip(kinds, suffixes, out_u, strict=True)):
        eid = f"{file_keys[files_sel[k]]}-{rows_sel[k]}-{suffix}"
        if kind == "signup":
            p = plans_sel[k]
            events.append(ev.Signup(eid, uniques[u], stamps[k], version, plans[p if p >= 0 else fallback]))
        else:
            events.append(ev.Cancel(eid, uniques[u], stamps[k], version, "voluntary"))
        counts[f"{kind} ({_WHY[suffix]})"] += 1
    buf = bytearray()
    ends = np.empty(len(events), np.int64)
    for j, e in enumerate(events):
        _enc.encode_into(e, buf, -1)
        ends[j] = len(buf)
    return Synthesized(
        np.asarray(out_u, np.int64), np.asarray(out_ts, np.int64), np.asarray(out_code, np.int8),
        np.asarray(out_seq, np.int64), np.asarray(out_prio, np.int8), np.asarray(out_anchor, np.int64),
        bytes(buf), ends, counts, signed_up,
    )
