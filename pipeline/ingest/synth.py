"""Events the source does not have but the contract needs: signups and inactivity churn.

* ``signup.synthesize: first_event``: a user without a signup event in the import (and
  not signed up by an earlier import, see the ledger's ``users.txt``) gets a ``signup``
  at the time of their first row (of any mapped type), ordered before that row, with the plan the mapping's
  ``signup.plan`` gives for that row (its ``default`` when empty). Id ``<file>-<row>-signup``.
* ``churn.definition: inactivity`` with ``inactive_days: N``: churn is the first moment a
  user has had no activity for N days. For every gap longer than N days between two
  consecutive events of a user (its own signups count: a user who only signed up is
  cancelled N days later), a ``cancel`` (reason ``voluntary``) is dated N days after
  the earlier event (id ``<file>-<row>-inactive``) and a ``signup`` (reactivation, id
  ``<file>-<row>-return``) at the later one, unless that one is the source's own signup. After a user's last event, the cancel is
  added only when the import's data reach that day (last event + N <= the newest event
  time of the import); otherwise the user is still active (censored), never guessed.
  The cancel is dated when the inactivity becomes observable, not back-dated to the last
  activity: nothing in the log is known before it could have been.

  **Across imports** (a source imported in several runs, in time order) the rule is the
  same as for one run of all the files: each user's last activity and whether its
  inactivity cancel was written are carried in the ledger (:class:`Carried`). A user
  censored at the end of one import is cancelled by a later one whose data reach the
  day, whether or not the user appears in it; a user whose first row in a later import
  comes more than N days after the carried last activity gets the cancel (if not written
  yet) and a reactivation signup. The ids are the ones a single run would give (the
  anchor row's file and row number are carried too).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
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
class Carried:
    """Per user, for inactivity churn across imports: the last activity's time (int64 us),
    its file key and source row (the synthesized events' id anchor), and whether the
    inactivity cancel after it was written."""

    users: list[str] = field(default_factory=list)
    last_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    file_key: list[str] = field(default_factory=list)
    row: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cancelled: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.users)


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
    uniques: list[str] = field(default_factory=list)  # the import's users, then carried ones it cancels
    carried: Carried | None = None  # inactivity churn: the state after this import


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
    carried: Carried | None = None,
) -> Synthesized:
    """Synthesized events for the import's events (columns in import order); ``carried``:
    inactivity churn's state after the earlier imports (None: none)."""
    uniques = list(uniques)
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
    id_keys: list[str] = []  # the anchor row's file key and source row: the event id's stem
    id_rows: list[int] = []
    new_state: Carried | None = None

    def emit(kind: str, suffix: str, u: np.ndarray, t: np.ndarray, seq: list[int], keys: Iterable[str],
             rows: np.ndarray) -> None:  # fmt: skip
        """Many events of one kind: user codes ``u``, times ``t``, import-order positions
        ``seq`` (-1: before this import's rows), the anchors' file keys and source rows."""
        kinds.extend([kind] * len(u))
        suffixes.extend([suffix] * len(u))
        out_u.extend(u.tolist())
        out_ts.extend(t.tolist())
        out_seq.extend(seq)
        out_code.extend([SIGNUP if kind == "signup" else CANCEL] * len(u))
        out_prio.extend([0 if kind == "signup" else 2] * len(u))
        id_keys.extend(keys)
        id_rows.extend(rows.tolist())

    def add(kind: str, i: np.ndarray, t: np.ndarray, u: np.ndarray, suffix: str) -> None:
        """Events anchored at this import's rows ``i``."""
        emit(kind, suffix, u, t, i.tolist(), (file_keys[f] for f in fidx[i].tolist()), row[i])

    def add_carried(c: np.ndarray, u: np.ndarray, gap: int) -> None:
        """Inactivity cancels anchored at carried last activities ``c`` (indices into
        ``carried``) for user codes ``u``: ordered before this import's rows at equal times."""
        assert carried is not None
        emit("cancel", "inactive", u, carried.last_us[c] + gap, [-1] * len(c),
             (carried.file_key[x] for x in c.tolist()), carried.row[c])  # fmt: skip

    if len(ts):
        # activity: every row but a cancel -- a source's own signup too, so a user who only
        # signed up (installed and left: the commonest churn of many products) is cancelled
        # N days later like anyone else (it was never active, so never churned, label 0)
        act = np.flatnonzero(code != CANCEL)
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
            back = code[j] != SIGNUP  # a source's own signup after the gap is the reactivation
            add("signup", j[back], ts[j[back]], u_sorted[k][back], "return")
            last = np.ones(len(o), bool)
            last[:-1] = u_sorted[1:] != u_sorted[:-1]
            k_last = np.flatnonzero(last)
            k = k_last[ts[o[k_last]] + gap <= data_end]
            add("cancel", o[k], ts[o[k]] + gap, u_sorted[k], "inactive")
            new_state = _across_imports(carried, uniques, o[first], u_sorted[first], o[k_last],
                                        ts, code, row, fidx, file_keys, gap, data_end, add, add_carried)  # fmt: skip
    elif m.churn == "inactivity" and carried is not None:
        new_state = carried
    stamps = pd.to_datetime(np.asarray(out_ts, np.int64), unit="us", utc=True).to_pydatetime()
    version, plans = ev.SCHEMA_VERSION, ev.PLANS
    sel = np.asarray(out_seq, np.int64)
    plans_sel = np.where(sel >= 0, plan[np.maximum(sel, 0)] if len(plan) else -1, -1).tolist()
    out_anchor = id_rows
    for k, (kind, suffix, u) in enumerate(zip(kinds, suffixes, out_u, strict=True)):
        eid = f"{id_keys[k]}-{id_rows[k]}-{suffix}"
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
        bytes(buf), ends, counts, signed_up, uniques, new_state,
    )


def _across_imports(carried: Carried | None, uniques: list[str], first_rows: np.ndarray, users: np.ndarray,
                    last_rows: np.ndarray, ts: np.ndarray, code: np.ndarray, row: np.ndarray, fidx: np.ndarray,
                    file_keys: list[str], gap: int, data_end: int, add, add_carried) -> Carried:  # fmt: skip
    """Inactivity churn between the earlier imports (``carried``) and this one: ``users``
    (codes, sorted) have their first activity at ``first_rows`` and last at ``last_rows``.
    Adds the events (``add``, ``add_carried``) and returns the state after this import:
    ``uniques`` grows by the carried users cancelled here without a row of their own."""
    seen = np.zeros(len(carried or ()), bool)
    if carried is not None and len(carried):
        at = {u: i for i, u in enumerate(carried.users)}
        pos = np.fromiter((at.get(uniques[x], -1) for x in users.tolist()), np.int64, len(users))
        has = pos >= 0
        c, u, f = pos[has], users[has], first_rows[has]
        seen[c] = True
        away = ts[f] - carried.last_us[c] > gap  # back after more than N days: churned between
        pending = away & ~carried.cancelled[c]
        add_carried(c[pending], u[pending], gap)
        back = away & (code[f] != SIGNUP)  # a source's own signup is the reactivation
        add("signup", f[back], ts[f[back]], u[back], "return")
        # carried users without a row here: cancelled once this import's data reach the day
        due = np.flatnonzero(~seen & ~carried.cancelled & (carried.last_us + gap <= data_end))
        codes = np.arange(len(uniques), len(uniques) + len(due), dtype=np.int64)
        uniques.extend(carried.users[x] for x in due.tolist())
        add_carried(due, codes, gap)
    here = [uniques[x] for x in users.tolist()]
    last_us = ts[last_rows]
    state = Carried(here, last_us, [file_keys[x] for x in fidx[last_rows].tolist()], row[last_rows],
                    last_us + gap <= data_end)  # fmt: skip
    if carried is None or not len(carried):
        return state
    keep = np.flatnonzero(~seen)
    was = carried.cancelled[keep] | (carried.last_us[keep] + gap <= data_end)
    return Carried(state.users + [carried.users[x] for x in keep.tolist()],
                   np.concatenate([state.last_us, carried.last_us[keep]]),
                   state.file_key + [carried.file_key[x] for x in keep.tolist()],
                   np.concatenate([state.row, carried.row[keep]]),
                   np.concatenate([state.cancelled, was]))  # fmt: skip
