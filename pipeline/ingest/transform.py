"""One source batch -> validated, encoded contract events plus rejected and dropped rows.

Every row becomes exactly one of: an event (validated by the contract's own msgspec
types, so an imported event is held to the same rules as a simulated one), a rejection
(with a stable reason, counted and dead-lettered), or a drop by the mapping's explicit
``event_type.unmapped: drop`` rule (counted per source value).

Event ids are ``<file key>-<row>``: the file's content hash and the row number, so the
same row always gets the same id (idempotent re-import).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import events as ev
from pipeline.features.columns import gc_paused
from pipeline.ingest.mapping import CATCH_ALL, FieldSpec, SourceMapping
from pipeline.ingest.readers import InvalidRow
from pipeline.ingest.timestamps import parse_timestamps

TYPE_CODE = {name: i for i, name in enumerate(ev.EVENT_TYPES)}
FUTURE_REASON = "timestamp: future (later than the clock plus max_future_skew_hours)"
_CONTROL_RE = "[\\x00-\\x1f\\x7f-\\x9f]"  # in a user id: a broken export, never a real id
# Invisible format characters (zero-width space/joiners, direction marks, word joiner, BOM): an id
# holding one looks like another user's id but is a different user - a copy-paste or encoding slip.
_INVISIBLE_RE = "[\\x{200b}-\\x{200f}\\x{2028}-\\x{202e}\\x{2060}-\\x{2064}\\x{feff}]"
_enc = msgspec.json.Encoder()


@dataclass
class Rejected:
    file: str
    row: int
    reason: str
    field: str
    user_id: str | None
    value: dict[str, Any]


@dataclass
class MappedBatch:
    """Valid events of one batch, in source order, as columns plus one encoded buffer."""

    users: list[str]
    ts_us: np.ndarray  # int64
    code: np.ndarray  # int8, TYPE_CODE
    row: np.ndarray  # int64 source row
    plan: np.ndarray  # int8: the signup-plan value of the row (PLANS index), -1 unknown
    buf: bytes  # the events' JSON, concatenated
    ends: np.ndarray  # int64 end offset of each event in buf
    rejected: list[Rejected] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def map_batch(rb: pa.RecordBatch, first_row: int, file_key: str, file_name: str, m: SourceMapping,
              max_ts_us: int | None = None, rows: np.ndarray | None = None,
              invalid: Sequence[InvalidRow] = ()) -> MappedBatch:  # fmt: skip
    """Map one batch; rows dated after ``max_ts_us`` (the clock plus the allowed skew) are
    rejected as future: one would move its partition's watermark years ahead. ``rows``: the
    source row of each row of ``rb`` when they are not ``first_row + i`` (the reader took
    invalid rows out); ``invalid``: those rows, rejected here as they are."""
    with gc_paused():
        mb = _map_batch(rb, first_row, file_key, file_name, m, max_ts_us,
                        np.arange(first_row, first_row + rb.num_rows, dtype=np.int64) if rows is None else rows)
    mb.rejected.extend(Rejected(file_name, r.row, r.reason, "row", None, {"row": r.text}) for r in invalid)
    return mb


def _texts(col) -> list:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return col.to_pylist()
    if pa.types.is_floating(col.type):  # 12.0 -> "12": ids read as numbers with gaps
        return [None if v is None else (str(int(v)) if float(v).is_integer() else str(v)) for v in col.to_pylist()]
    return pc.cast(col, pa.string()).to_pylist()


def _map_batch(rb: pa.RecordBatch, first_row: int, file_key: str, file_name: str, m: SourceMapping,
               max_ts_us: int | None, rowno: np.ndarray) -> MappedBatch:  # fmt: skip
    n = rb.num_rows
    srow = rowno.tolist()
    users = _texts(rb.column(m.user_id))
    types = _texts(rb.column(m.type_column))
    ts_us, ts_err = parse_timestamps(rb.column(m.ts_column), m)
    stamps = pd.to_datetime(ts_us, unit="us", utc=True).to_pydatetime()
    pylists: dict[str, list] = {}

    def column(name: str) -> list:
        v = pylists.get(name)
        if v is None:
            v = pylists[name] = rb.column(name).to_pylist()
        return v

    out_rows: list[int] = []
    dicts: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    dropped: Counter[str] = Counter()
    rules = m.type_values
    vocabulary = m.action_names
    specs_cache: dict[str, list[tuple[str, FieldSpec, list]]] = {}
    by_spec: dict[int, list] = {}

    def values_of(spec: FieldSpec) -> list:
        vals = by_spec.get(id(spec))
        if vals is None:
            vals = by_spec[id(spec)] = field_values(spec, rb, column, m.csv_decimal)
        return vals

    def reject(i: int, reason: str, key: str) -> None:
        raw = {c: column(c)[i] for c in m.columns()}
        u = users[i] if users[i] and len(users[i]) <= 128 else None
        rejected.append(Rejected(file_name, srow[i], reason, key, u, raw))

    plan_vals = values_of(m.signup_plan) if m.signup_plan is not None and m.signup_plan.column else None
    ucol = rb.column(m.user_id)
    text_ids = pa.types.is_string(ucol.type) or pa.types.is_large_string(ucol.type)
    control = (pc.match_substring_regex(ucol, _CONTROL_RE).fill_null(False).to_pylist()
               if text_ids else [False] * n)
    invisible = (pc.match_substring_regex(ucol, _INVISIBLE_RE).fill_null(False).to_pylist()
                 if text_ids else [False] * n)
    for i in range(n):
        u = users[i]
        if u is None or u == "":
            reject(i, "user_id: empty", "user_id")
            continue
        if len(u) > 128:
            reject(i, "user_id: longer than 128 characters", "user_id")
            continue
        if control[i]:
            reject(i, "user_id: contains control characters", "user_id")
            continue
        if u[0].isspace() or u[-1].isspace():  # ' u1 ' would be a second user next to 'u1'
            reject(i, "user_id: leading or trailing whitespace", "user_id")
            continue
        if invisible[i]:
            reject(i, "user_id: contains invisible characters (zero-width, direction mark or BOM)", "user_id")
            continue
        src = types[i]
        if src is None or src == "":
            reject(i, "event type: empty", "event_type.column")
            continue
        rule = rules.get(src)
        if rule is None:
            if m.unmapped == "drop":
                dropped[src] += 1
            else:
                reject(i, "event type: not in event_type.values (unmapped: reject)", "event_type.values")
            continue
        if ts_err[i] is not None:
            reject(i, ts_err[i], "timestamp")
            continue
        if max_ts_us is not None and ts_us[i] > max_ts_us:
            reject(i, FUTURE_REASON, "timestamp")
            continue
        if plan_vals is not None and plan_vals[i].__class__ is _Bad:  # e.g. `level: gold`, not in values
            reject(i, f"{m.signup_plan.key}: {plan_vals[i].why}", m.signup_plan.key)
            continue
        specs = specs_cache.get(src)
        if specs is None:
            specs = specs_cache[src] = [(f, spec, values_of(spec)) for f, spec in m.fields_for(src).items()]
        d: dict[str, Any] = {"type": rule.type, "event_id": f"{file_key}-{srow[i]}", "user_id": u,
                             "ts": stamps[i], "schema_version": ev.SCHEMA_VERSION}
        for f, spec, vals in specs:
            v = vals[i]
            if v.__class__ is _Bad:
                reject(i, f"{spec.key}: {v.why}", spec.key)
                break
            d[f] = v
        else:
            if rule.type == "activity" and d["action"] not in vocabulary:
                if m.undeclared == "reject":
                    reject(i, "action: not in actions.declare (actions.undeclared: reject)", "actions.declare")
                    continue
                d["action"] = CATCH_ALL
            dicts.append(d)
            out_rows.append(i)

    events = _convert(dicts, out_rows, rejected, reject)
    keep = np.asarray([i for i, e in zip(out_rows, events, strict=True) if e is not None], np.int64)
    events = [e for e in events if e is not None]
    buf = bytearray()
    ends = np.empty(len(events), np.int64)
    for j, e in enumerate(events):
        _enc.encode_into(e, buf, -1)
        ends[j] = len(buf)
    plan = np.full(len(keep), -1, np.int8)
    if m.signup_plan is not None:
        plan_idx = {p: k for k, p in enumerate(ev.PLANS)}
        vals = values_of(m.signup_plan)
        plan[:] = [plan_idx.get(vals[i], -1) if vals[i].__class__ is not _Bad else -1 for i in keep.tolist()]
    return MappedBatch(
        users=[users[i] for i in keep.tolist()], ts_us=ts_us[keep], code=np.fromiter(
            (TYPE_CODE[e.type] for e in events), np.int8, len(events)),
        row=rowno[keep], plan=plan, buf=bytes(buf), ends=ends, rejected=rejected, dropped=dropped,
    )


# msgspec's reasons for a text value that does not parse as the field's number type
_TEXT_NOT_NUMBER = frozenset({"Expected `float`, got `str`", "Expected `int`, got `str`"})


def _convert(dicts, rows, rejected, reject) -> list[ev._Event | None]:
    """Validate with the contract's types: one call for the batch, row by row if any fails."""
    try:
        return list(msgspec.convert(dicts, list[ev.Event], strict=False))
    except (msgspec.ValidationError, ValueError, TypeError):
        pass
    out: list[ev._Event | None] = []
    for i, d in zip(rows, dicts, strict=True):
        try:
            out.append(msgspec.convert(d, ev.Event, strict=False))
        except msgspec.ValidationError as exc:
            reason, _, path = str(exc).partition(" - at `")
            path = path.rstrip("`")
            if reason in _TEXT_NOT_NUMBER:  # a text cell (CSV, JSON) where the contract wants a number
                reason = "not a number"
            key = f"fields.{d['type']}.{path[2:]}" if path.startswith("$.") else f"fields.{d['type']}"
            if path.startswith("$.") and path[2:] in ("user_id", "event_id", "ts"):
                key = path[2:]
            reject(i, f"invalid {d['type']}: {reason} at {path or '$'}", key)
            out.append(None)
        except (ValueError, TypeError) as exc:  # __post_init__ (e.g. plan change to the same plan)
            reject(i, f"invalid {d['type']}: {exc}", f"fields.{d['type']}")
            out.append(None)
    return out


class _Bad:
    """A cell that cannot fill its field (the reason is counted, so it is stable text)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


_EMPTY, _NOT_IN_VALUES, _NOT_A_NUMBER = _Bad("empty and no default"), _Bad("value not in values"), _Bad("not a number")


# the contract's number fields (a decimal comma applies to their text cells only)
NUMBER_FIELDS = frozenset({"watch_minutes", "amount", "value"})


def field_values(spec: FieldSpec, rb: pa.RecordBatch, column, decimal: str = ".") -> list:
    """One field's value for every row of the batch (a ``_Bad`` where it cannot be filled).
    ``decimal``: the file's decimal mark; with ``","`` a number field's text cells read
    ``3,5`` as 3.5 (a cell that also holds a ``.`` is then not a number)."""
    n = rb.num_rows
    if spec.column is None:
        return [spec.const] * n
    empty = _EMPTY if spec.default is None else spec.default
    col = rb.column(spec.column)
    if (decimal == "," and spec.values is None and spec.key.rsplit(".", 1)[-1] in NUMBER_FIELDS
            and pa.types.is_string(col.type)):
        dots = pc.any(pc.match_substring(col, ".")).as_py()
        col = pc.replace_substring(col, ",", ".")
        if dots:  # "1.234,5": a grouping dot is not read as the decimal mark
            col = pc.if_else(pc.match_substring(rb.column(spec.column), "."), pa.scalar("x"), col)
        converted = col.to_pylist()

        def column(_name: str, converted: list = converted) -> list:  # noqa: F811 - this field's cells
            return converted
    if spec.values is not None:
        mp = spec.values
        raw = _texts(col)
        return [empty if v is None or v == "" else mp.get(v, _NOT_IN_VALUES) for v in raw]
    if spec.scale is not None:
        k = spec.scale
        if pa.types.is_string(col.type):  # read as text: the usual all-numbers column, converted at once
            try:
                return [empty if v is None else v * k for v in pc.cast(col, pa.float64()).to_pylist()]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # some cell is not a number: value by value below
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            return [empty if v is None else v * k for v in column(spec.column)]
        out = []
        for v in column(spec.column):
            if v is None or v == "":
                out.append(empty)
                continue
            try:
                out.append(float(v) * k)
            except (TypeError, ValueError):
                out.append(_NOT_A_NUMBER)
        return out
    return [empty if v is None or v == "" else v for v in column(spec.column)]
