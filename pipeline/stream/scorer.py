"""Feature vectors -> score rows: risk, top reasons for high-risk users, plan and revenue.

One ``predict`` call per micro-batch; contributions only for the active users the
high-risk rule marks (:mod:`pipeline.highrisk`; by default risk >= 3x the champion's
training base rate, a few per cent of users), so reasons cost little per event. The rule
is resolved per model (a multiple of its base rate, or an absolute risk) or, for
``top_percent``, on the risks of the last ``TOP_WINDOW`` active users this worker scored
(this batch's included): a trickle of 3-user batches must not mark one user in three.

Reasons are deferred in the stream (``Scorer.score(..., defer=True)``): the batch keeps
only the high-risk rows' vectors and the model, and the background writer computes the
reasons (:func:`resolve_reasons`) for the rows it actually writes as current scores,
after coalescing, in one contributions call per write. A row superseded before its write
(the same user scored again later in the same write: a history point at most, and
points hold no reasons) is never explained; the stored reasons are the same, computed
from the same vector and model (contributions are per row). Deferred reasons go only to
the store, so they are built straight to the JSON text it writes
(:func:`pipeline.store.rows.reasons_text`, equal to encoding the dicts, tested), without
a dict per reason or the encoder.

Reasons: XGBoost's own per-feature contributions. Exact TreeSHAP (``pred_contribs``)
ran at ~6,500 rows/s on the default champion (115 trees, depth 4), Saabas
``approx_contribs`` at ~300,000 rows/s on one core, so ``approx`` is the default;
``reasons_method="exact"`` switches (see ``benchmarks/bench_stream.py`` for the figures).
Each reason is ``{"feature", "value", "contribution"}`` (log-odds), largest first.

A user with no active subscription (cancelled, voluntarily or not, or no signup seen)
still gets a row, marked ``active=False``, with its risk, no plan, a monthly revenue of
0 and no reasons: a churned user is not "at risk" and brings no revenue to put at risk,
so the store's readers leave it out of at-risk counts, top users and revenue at risk.
The row is rewritten (not deleted), so a re-subscription simply marks it active again
and the exactly-once comparison covers it like any other row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, repeat
from typing import Any

import numpy as np

from pipeline.events import PLANS
from pipeline.features.registry import FEATURE_INDEX
from pipeline.features.state import FeatureFrame
from pipeline.highrisk import HighRiskRule, ResolvedThreshold
from pipeline.store.records import HistoryPolicy
from pipeline.store.rows import ReasonsJSON, ScoreColumns, gatherer, reasons_text
from pipeline.stream.model import ScoringModel

_TIER = FEATURE_INDEX["plan_tier"]
_PRICE = FEATURE_INDEX["plan_price"]
_PLAN_NAMES = np.array([None, *PLANS], dtype=object)  # index tier + 1 (tier -1: unknown)
TOP_WINDOW = 10_000  # recent active risks a top-k % rule is taken over (per worker)


@dataclass
class Explain:
    """Reasons still to compute for some rows of a chunk: their positions (ascending),
    their engine vectors and the function that explains them (a scorer's, with its model)."""

    rows: np.ndarray  # int64 positions in the chunk
    values: np.ndarray  # (len(rows), n_columns) float64
    explain: Callable[[np.ndarray], list[list[dict[str, object]]] | list[ReasonsJSON]]
    key: tuple[int, int]  # (id(scorer), id(model)): rows of one key are explained in one call


@dataclass
class ScoreChunk:
    """The score rows of one micro-batch of one partition (column-wise). ``pending``:
    reasons not computed yet (``reasons[i]`` is None there until :func:`resolve_reasons`)."""

    partition: int
    features_time: datetime
    model_version: str
    user_id: list[str]
    risk: np.ndarray
    reasons: list[list[dict[str, object]] | ReasonsJSON | None]  # deferred ones: JSON text (ReasonsJSON)
    plan: list[str | None]
    monthly_revenue: np.ndarray
    active: np.ndarray  # bool
    pending: Explain | None = None
    # the users' slots in their partition's feature state (distinct within a chunk) and that
    # state's serial, when the worker knows them: :func:`coalesce` then works column-wise
    slots: np.ndarray | None = None
    slot_space: int | None = None

    def __len__(self) -> int:
        return len(self.user_id)

    def take(self, idx: list[int]) -> ScoreChunk:
        ix = np.asarray(idx, dtype=np.int64)
        pending = self.pending
        if pending is not None:
            new = np.full(len(self), -1, np.int64)
            new[ix] = np.arange(len(idx), dtype=np.int64)
            at = new[pending.rows]
            keep = at >= 0
            pending = Explain(at[keep], pending.values[keep], pending.explain, pending.key) if keep.any() else None
        get = gatherer(list(idx))
        return ScoreChunk(self.partition, self.features_time, self.model_version, get(self.user_id),
                          self.risk[ix], get(self.reasons, repeat_one=True), get(self.plan, repeat_one=True),
                          self.monthly_revenue[ix],
                          self.active[ix], pending, None if self.slots is None else self.slots[ix],
                          self.slot_space)  # fmt: skip


def drop_superseded_reasons(chunks: list[ScoreChunk]) -> None:
    """Of the pending reasons of ``chunks`` (the rows of one ``upsert_scores`` call), keep
    those of rows that can be their user's current score in that call: rows at the user's
    newest ``features_time`` there (all of them on a tie, whatever the store's tie rule).
    An older row of the user is at most a history point, and points hold no reasons.

    Chunks that all carry slots (the stream's) are done by slot: per (partition, state
    serial) an array by slot holds the hot users' newest time, one gather a chunk instead
    of every id of every chunk tested against the hot set (~0.07 us an event in the
    stream's writer). A user held by two states (a partition handed over mid-flush) is
    then two users, each with its own newest time: a row can keep reasons the id rule
    would drop (explained, then stale in the store), never lose ones it keeps: the newest
    time within one state is at most the newest overall."""
    if all(c.slots is not None and c.slot_space is not None for c in chunks):
        _drop_superseded_by_slot(chunks)
        return
    hot: set[str] = set()
    for c in chunks:
        if c.pending is not None:
            ids = c.user_id
            hot.update(ids[i] for i in c.pending.rows.tolist())
    if not hot:
        return
    newest: dict[str, datetime] = {}
    for c in chunks:
        t = c.features_time
        for u in hot.intersection(c.user_id):
            if u not in newest or t > newest[u]:
                newest[u] = t
    for c in chunks:
        p = c.pending
        if p is None:
            continue
        t, ids = c.features_time, c.user_id
        keep = np.fromiter((newest[ids[i]] == t for i in p.rows.tolist()), bool, len(p.rows))
        if not keep.all():
            c.pending = Explain(p.rows[keep], p.values[keep], p.explain, p.key) if keep.any() else None


_NO_ROW = np.iinfo(np.int64).min  # a per-slot time array's empty slot: no row of the user (yet)
_HOT = _NO_ROW + 1  # _drop_superseded_by_slot: a hot user, no row time yet (not hot: _NO_ROW)


def _drop_superseded_by_slot(chunks: list[ScoreChunk]) -> None:
    top: dict[tuple[int, int], int] = {}  # per (partition, serial): the highest slot + 1
    for c in chunks:
        if len(c):
            key = (c.partition, c.slot_space)
            top[key] = max(top.get(key, 0), int(c.slots.max()) + 1)  # type: ignore[union-attr, arg-type]
    newest: dict[tuple[int, int], np.ndarray] = {}
    for c in chunks:
        if c.pending is not None and len(c.pending.rows):
            key = (c.partition, c.slot_space)  # type: ignore[assignment]
            if key not in newest:
                newest[key] = np.full(top[key], _NO_ROW, np.int64)
            newest[key][c.slots[c.pending.rows]] = _HOT  # type: ignore[index]
    if not newest:
        return
    at: list[int] = []
    for c in chunks:
        times = newest.get((c.partition, c.slot_space))  # type: ignore[arg-type]
        t = int(_time64(c).astype(np.int64)) if len(c) else 0
        at.append(t)
        if times is None or not len(c):
            continue
        held = times[c.slots]
        hot = held > _NO_ROW
        times[c.slots[hot]] = np.maximum(held[hot], t)  # type: ignore[index]
    for c, t in zip(chunks, at, strict=True):
        p = c.pending
        if p is None or not len(p.rows):
            continue
        keep = newest[(c.partition, c.slot_space)][c.slots[p.rows]] == t  # type: ignore[index]
        if not keep.all():
            c.pending = Explain(p.rows[keep], p.values[keep], p.explain, p.key) if keep.any() else None


def resolve_reasons(chunks: list[ScoreChunk]) -> int:
    """Compute the pending reasons of ``chunks`` in place: one contributions call per
    (scorer, model) for all their rows. Returns the rows explained."""
    groups: dict[tuple[int, int], list[ScoreChunk]] = {}
    for c in chunks:
        if c.pending is not None:
            groups.setdefault(c.pending.key, []).append(c)
    done = 0
    for group in groups.values():
        values = np.concatenate([c.pending.values for c in group])  # type: ignore[union-attr]
        reasons = group[0].pending.explain(values)  # type: ignore[union-attr]
        at = 0
        for c in group:
            p = c.pending
            assert p is not None
            for i, r in zip(p.rows.tolist(), reasons[at : at + len(p.rows)], strict=True):
                c.reasons[i] = r
            at += len(p.rows)
            c.pending = None
        done += len(values)
    return done


def coalesce(chunks: list[ScoreChunk], history: HistoryPolicy | None = None) -> list[ScoreChunk]:
    """Only each user's last row (its newest score) -- or, with ``history``, its last row
    in each history interval (the rows ``score_history`` keeps) --, chunks kept in order.

    It runs in the writer thread, so it works a chunk (one micro-batch) at a time: the
    batch loop gets the GIL back between chunks, where one vectorised call over a whole
    flush would hold it for tens of ms. Chunks that carry their users' ``slots`` and the
    serial of the feature state those are slots of (``slot_space``: the stream's) are done
    column-wise: a state never gives a slot to a second user, so (serial, slot) is the
    user, and per (partition, serial, interval) an array by slot marks the users kept
    (:func:`_unseen_slots`). The same user in two states (a partition handed over or
    restored mid-flush) keeps a row in each, which the store deduplicates. Per row that
    is a few numpy element operations instead of a set lookup and insert in Python.
    Other chunks go through a set of ids.
    """
    by_slot: dict[tuple[int, int, Any], np.ndarray] = {}
    seen_in: dict[Any, set[str]] = {}
    out = []
    for c in reversed(chunks):
        bucket = None if history is None else _bucket(_time64(c), history)
        if c.slots is not None and c.slot_space is not None and len(c):
            keep = _unseen_slots(c.slots, by_slot, (c.partition, c.slot_space, bucket)).tolist()
        else:
            seen = seen_in.setdefault(bucket, set())
            add = seen.add
            ids = c.user_id
            keep = [i for i in range(len(ids) - 1, -1, -1) if not (ids[i] in seen or add(ids[i]))]
            keep.reverse()
        if len(keep) == len(c):
            out.append(c)
        elif len(keep):
            out.append(c.take(keep))
    out.reverse()
    return out


def split_open(chunks: list[ScoreChunk], history: HistoryPolicy,
               limit: int | None = None) -> tuple[ScoreColumns, list[ScoreChunk]] | None:  # fmt: skip
    """Pending rows (chunks in processing order) as ``(closed, open)``: ``closed`` as the
    columns of history points (:func:`point_columns`), ``open`` as chunks, kept in order.

    ``open``: each user's newest row -- its current score, and the history point of its
    newest interval, both of which a later row may still replace. ``closed``: each user's
    last row in every *older* interval: history points no later row can replace (a user's
    rows come in ``features_time`` order: a partition's batches in processing order).
    Rows superseded within an interval are in neither. :func:`coalesce` keeps exactly
    the union of the two.
    A row newer (``features_time``) than its user's last row -- rows out of time order,
    as after a partition is rewound to its checkpoint with rows of the first pass still
    pending -- stays open too, so the write that takes ``open`` still sees the user's
    newest score.

    The writer's eviction (:meth:`pipeline.stream.sink.Writer._evict`) writes ``closed`` and
    keeps ``open`` pending: the costly part of a write, one current-score upsert per user,
    then happens once per flush instead of once per eviction.

    ``limit``: None (nothing split) as soon as the open rows are more than ``limit``. The
    walk goes newest chunk first and the open rows only accumulate, so it stops where
    they pass it instead of splitting rows the caller would not use (a worker with more
    active users than its eviction keeps pending)."""
    last_time: dict[tuple[int, int], np.ndarray] = {}  # by slot: the time of the user's last row
    by_point: dict[tuple[int, int, Any], np.ndarray] = {}
    seen_users: dict[str, int] = {}  # id -> the time of its last row
    seen_in: dict[Any, set[str]] = {}
    closed: list[tuple[ScoreChunk, list[int]]] = []
    still: list[ScoreChunk] = []
    kept = 0
    for c in reversed(chunks):
        if not len(c):
            continue
        t64 = _time64(c)
        bucket, t = _bucket(t64, history), int(t64.astype(np.int64))
        if c.slots is not None and c.slot_space is not None:
            key = (c.partition, c.slot_space)
            times = last_time[key] = _grown(last_time.get(key), int(c.slots.max()) + 1, _NO_ROW)
            before = times[c.slots]  # the time of each user's last row, _NO_ROW for none yet
            newest = np.flatnonzero(before == _NO_ROW)
            times[c.slots[newest]] = t
            points = _unseen_slots(c.slots, by_point, (*key, bucket))
            older = points[before[points] != _NO_ROW]  # sorted: points are
            ahead = before[older] < t  # newer than the user's last row: out of time order
            latest = np.union1d(newest, older[ahead]).tolist() if ahead.any() else newest.tolist()
            older = older[~ahead].tolist()
        else:
            seen_p = seen_in.setdefault(bucket, set())
            latest, older = [], []
            ids = c.user_id
            for i in range(len(ids) - 1, -1, -1):
                u = ids[i]
                last = seen_users.get(u)
                if last is None:
                    seen_users[u] = t
                    seen_p.add(u)
                    latest.append(i)
                elif u not in seen_p:
                    seen_p.add(u)
                    (latest if t > last else older).append(i)
            latest.reverse()
            older.reverse()
        kept += len(latest)
        if limit is not None and kept > limit:
            return None
        if len(latest) == len(c):
            still.append(c)
        elif latest:
            still.append(c.take(latest))
        if older:
            closed.append((c, older))
    closed.reverse()
    still.reverse()
    return point_columns(closed), still


def point_columns(rows: list[tuple[ScoreChunk, list[int]]]) -> ScoreColumns:
    """The rows ``(chunk, positions)`` as the columns ``Store.append_score_history``
    takes: a point needs its user, risk, model version and time, nothing else (no chunk
    of the rows is built, nor their plan and reasons gathered)."""
    sizes = [len(pos) for _, pos in rows]
    times = np.array([_time64(c) for c, _ in rows], dtype="datetime64[us]")
    return ScoreColumns(
        user_id=list(chain.from_iterable(gatherer(pos)(c.user_id) for c, pos in rows)),
        risk=np.concatenate([c.risk[pos] for c, pos in rows]) if rows else np.zeros(0),
        model_version=list(chain.from_iterable(repeat(c.model_version, len(pos)) for c, pos in rows)),
        features_time=np.repeat(times, sizes),
    )


def _unseen_slots(slots: np.ndarray, by_slot: dict[tuple[int, int, Any], np.ndarray], key: tuple[int, int, Any]) -> np.ndarray:
    """Positions (ascending) of ``slots`` (one chunk's, distinct) not kept yet under
    ``key``; marks them."""
    held = by_slot[key] = _grown(by_slot.get(key), int(slots.max()) + 1, False)
    keep = np.flatnonzero(~held[slots])
    held[slots[keep]] = True
    return keep


def _grown(held: np.ndarray | None, top: int, fill: bool | int) -> np.ndarray:
    """``held`` (a per-slot array: bool marks or int64 times), at least ``top`` long (by
    doubling), the new slots ``fill``."""
    if held is not None and len(held) >= top:
        return held
    grown = np.full(max(top, 2 * (0 if held is None else len(held))), fill,
                    dtype=np.bool_ if isinstance(fill, bool) else np.int64)  # fmt: skip
    if held is not None:
        grown[: len(held)] = held
    return grown


def _time64(chunk: ScoreChunk) -> np.datetime64:
    """The chunk's ``features_time`` (aware, UTC) as ``datetime64[us]``."""
    return np.datetime64(chunk.features_time.replace(tzinfo=None), "us")


def _bucket(t: np.datetime64, history: HistoryPolicy) -> int:
    return int(history.bucket_us(np.array([t])).view("int64")[0])


def to_columns(chunks: list[ScoreChunk]) -> ScoreColumns:
    """Concatenate chunks (in processing order) into the columns ``Store.upsert_scores``
    takes; a user may be in them several times (the store keeps the newest as the current
    score, and the newest per history interval as points). Columns, not a DataFrame: the
    store takes a frame apart again, and building one was ~15 % of the writer's CPU."""
    sizes = [len(c) for c in chunks]
    times = np.array([_time64(c) for c in chunks], dtype="datetime64[us]")
    return ScoreColumns(
        user_id=list(chain.from_iterable(c.user_id for c in chunks)),
        risk=np.concatenate([c.risk for c in chunks]) if chunks else np.zeros(0),
        model_version=list(chain.from_iterable(repeat(c.model_version, len(c)) for c in chunks)),
        features_time=np.repeat(times, sizes),
        reasons=list(chain.from_iterable(c.reasons for c in chunks)),
        plan=list(chain.from_iterable(c.plan for c in chunks)),
        monthly_revenue=np.concatenate([c.monthly_revenue for c in chunks]) if chunks else np.zeros(0),
        partition=np.repeat(np.array([c.partition for c in chunks], dtype=np.int64), sizes),
        active=np.concatenate([c.active for c in chunks]) if chunks else np.zeros(0, bool),
    )


class Scorer:
    """``rule``: who gets reasons (a :class:`HighRiskRule`, its text, or a float t for
    ``absolute:t``; default 3x the champion's training base rate)."""

    def __init__(self, rule: HighRiskRule | str | float | None = None, top_k: int = 3, exact: bool = False,
                 *, threshold: float | None = None) -> None:  # fmt: skip
        if threshold is not None:  # the old keyword: an absolute threshold
            rule = threshold
        if rule is None:
            rule = HighRiskRule()
        elif isinstance(rule, int | float):
            rule = HighRiskRule.absolute(float(rule))
        self.rule = HighRiskRule.parse(rule)
        self.resolved: ResolvedThreshold | None = None  # the threshold of the newest batch
        self._recent = np.zeros(TOP_WINDOW)  # ring of recent active risks (top_percent)
        self._filled = self._next = 0
        self._resolved_for: str | None = None  # model version it was resolved for (not per batch)
        self.top_k = top_k
        self.exact = exact
        self.reasons_rows = 0  # rows explained so far (for the benchmark's breakdown)
        self._predict_s = 0.0
        self._reasons_s = 0.0

    def take_timings(self) -> tuple[float, float]:
        """CPU seconds spent in predict and in reasons since the previous call."""
        out = (self._predict_s, self._reasons_s)
        self._predict_s = self._reasons_s = 0.0
        return out

    def score(self, partition: int, frame: FeatureFrame, model: ScoringModel, defer: bool = False,
              slots: np.ndarray | None = None, slot_space: int | None = None) -> ScoreChunk:  # fmt: skip
        """The batch's score rows. ``defer``: leave the reasons to :func:`resolve_reasons`
        (the stream's writer calls it for the rows it writes); else computed here.
        ``slots``: the frame's users' slots in the partition's feature state (distinct),
        ``slot_space``: that state's ``serial``; kept on the chunk for :func:`coalesce`."""
        values = frame.values
        t0 = time.thread_time()
        risk = model.predict(values)
        t1 = time.thread_time()
        reasons: list[list[dict[str, object]] | None] = [None] * len(risk)
        hot = np.flatnonzero(self.threshold(model, risk, frame.active).marks(risk) & frame.active)
        pending = None
        if len(hot) and defer:
            pending = Explain(hot, values[hot], lambda v, m=model: self.reasons_json(v, m), (id(self), id(model)))
        elif len(hot):
            reasons_hot = self.reasons(values[hot], model)
            for i, r in zip(hot.tolist(), reasons_hot, strict=True):
                reasons[i] = r
        self._predict_s += t1 - t0
        self._reasons_s += time.thread_time() - t1
        tier = values[:, _TIER].astype(np.int64)
        plan = _PLAN_NAMES[np.clip(tier, -1, len(PLANS) - 1) + 1]
        plan[~frame.active] = None
        revenue = np.where(frame.active, values[:, _PRICE], 0.0)
        return ScoreChunk(partition, frame.t, model.version, frame.users, risk, reasons, plan.tolist(),
                          revenue, np.asarray(frame.active, dtype=bool), pending, slots, slot_space)  # fmt: skip

    def check(self, model: ScoringModel) -> None:
        """Refuse (``ModelMismatchError``, saying how to fix it) a champion the rule cannot
        be resolved for: a multiple of the base rate and a model that records none."""
        self.rule.check_base_rate(model.version, model.base_rate)

    def threshold(self, model: ScoringModel, risk: np.ndarray, active: np.ndarray) -> ResolvedThreshold:
        """The rule resolved for ``model`` (cached per version) or this batch (top k %)."""
        if self.rule.needs_risks:
            self._remember(risk[np.asarray(active, dtype=bool)])
            self.resolved = self.rule.resolve(risks=self._recent[: self._filled])
        elif self.resolved is None or self._resolved_for != model.version:
            self.resolved = self.rule.resolve(base_rate=model.base_rate, version=model.version,
                                              base_rate_source=model.base_rate_source)  # fmt: skip
            self._resolved_for = model.version
        return self.resolved

    def _remember(self, risk: np.ndarray) -> None:
        ring = self._recent
        risk = risk[-len(ring):]
        n = len(risk)
        end = self._next + n
        if end <= len(ring):
            ring[self._next:end] = risk
        else:
            cut = len(ring) - self._next
            ring[self._next:] = risk[:cut]
            ring[: n - cut] = risk[cut:]
        self._next = end % len(ring)
        self._filled = min(self._filled + n, len(ring))

    def reasons(self, values: np.ndarray, model: ScoringModel) -> list[list[dict[str, object]]]:
        """Top ``top_k`` contributions per row, largest first."""
        return self._dicts(model, *self._top(values, model))

    @staticmethod
    def _dicts(model: ScoringModel, top: np.ndarray, raw: np.ndarray, con: np.ndarray) -> list[list[dict[str, object]]]:
        names = model.features
        return [
            [{"feature": names[j], "value": round(v, 4), "contribution": round(c, 4)}
             for j, v, c in zip(idx, rv, rc, strict=True)]
            for idx, rv, rc in zip(top.tolist(), raw.tolist(), con.tolist(), strict=True)  # Python floats
        ]  # fmt: skip

    def reasons_json(self, values: np.ndarray, model: ScoringModel) -> list[list[dict[str, object]]] | list[ReasonsJSON]:
        """:meth:`reasons` as the JSON text the store writes for them (the stream's
        deferred reasons: they only go to the store); the dicts when a value is not
        finite, which the store then refuses with its usual error."""
        top, raw, con = self._top(values, model)
        if not (np.isfinite(raw).all() and np.isfinite(con).all()):
            return self._dicts(model, top, raw, con)
        return reasons_text(model.features, top, raw, con)

    def _top(self, values: np.ndarray, model: ScoringModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``top_k`` largest contributions per row: (feature positions, the features'
        values, the contributions), each (rows, k)."""
        self.reasons_rows += len(values)
        contrib = model.contributions(values, exact=self.exact)
        k = min(self.top_k, contrib.shape[1])
        top = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(values[:, model.columns], top, axis=1), np.take_along_axis(contrib, top, axis=1)
