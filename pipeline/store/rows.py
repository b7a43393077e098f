"""Validate and convert rows for the store, column-wise (the hot path stays vectorised).

Score rows come as a pandas DataFrame or a sequence of mappings with the keys of
:class:`ScoreRow`. Times are timezone-aware (pandas ``datetime64[ns, UTC]``, aware
``datetime``) or numpy ``datetime64`` (which has no zone: taken as UTC). Bad rows are
rejected as a whole batch with :class:`InvalidRowError` naming the row and the fix: a
worker must not commit offsets for a batch whose scores were not written.
"""

from __future__ import annotations

import functools
import json
import json.encoder
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, NotRequired, TypedDict

import numpy as np
import pandas as pd

from pipeline.errors import InvalidRowError
from pipeline.store.segments import user_array

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # one instance: 3x faster


def _no_default(o: object) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


# The C encoder ``_JSON.encode`` builds on every call, built once (no circular-reference
# check: a cycle ends in RecursionError, reported as bad reasons): 1.6x faster per row.
_C_ENCODE = (
    None if json.encoder.c_make_encoder is None else json.encoder.c_make_encoder(
        None, _no_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
)  # fmt: skip


def _json_text(v: Any) -> str:
    return _JSON.encode(v) if _C_ENCODE is None else "".join(_C_ENCODE(v, 0))
_US = timedelta(microseconds=1)


class ScoreRow(TypedDict):
    user_id: str
    risk: float  # churn probability in [0, 1]
    model_version: str
    features_time: datetime  # event time the features are as of
    # top contributions, e.g. [{"feature": "failed_payments_30d", "contribution": 0.41}]
    reasons: NotRequired[list[dict[str, Any]] | None]
    plan: NotRequired[str | None]
    monthly_revenue: NotRequired[float | None]
    partition: NotRequired[int | None]
    # False: the user has no active subscription (cancelled); default True. Readers of
    # current scores count active users only (a churned user is not "at risk").
    active: NotRequired[bool]


REQUIRED = ("user_id", "risk", "model_version", "features_time")
OPTIONAL = ("reasons", "plan", "monthly_revenue", "partition", "active")


class TimeCodec:
    """UTC times to and from the database's representation (see ``schema``)."""

    def __init__(self, dialect: str) -> None:
        self.text = dialect == "sqlite"

    def many(self, us: np.ndarray) -> list[Any]:
        """``datetime64[us]`` (UTC) -> bind values."""
        if self.text:
            return np.datetime_as_string(us, unit="us").tolist()
        return pd.DatetimeIndex(us).tz_localize(UTC).to_pydatetime().tolist()

    def iso(self, us: np.ndarray) -> list[str | None]:
        """``datetime64[us]`` (UTC, NaT allowed) -> ISO text for the bulk path (see ``bulk``):
        ``YYYY-MM-DDTHH:MM:SS.ffffff`` (PostgreSQL: with ``Z``)."""
        fast = iso_text(us, zone=not self.text)
        if fast is not None:
            return fast
        out = np.datetime_as_string(us, unit="us", timezone="naive" if self.text else "UTC")
        if np.isnat(us).any():
            out = np.where(np.isnat(us), None, out)
        return out.tolist()

    def one(self, value: datetime) -> Any:
        return self.many(to_utc_us([value], "time"))[0]

    def score_times(self, us: np.ndarray) -> list[Any]:
        """``datetime64[us]`` (UTC, no NaT) -> bind values of ``scores``' time columns
        (``schema.ScoreTime``): int64 microseconds on SQLite, as :meth:`many` elsewhere."""
        if self.text:
            return np.asarray(us, dtype="datetime64[us]").view("int64").tolist()
        return self.many(us)

    def score_time(self, value: datetime) -> Any:
        """One bind value for a comparison with a ``scores`` time column."""
        return self.score_times(to_utc_us([value], "time"))[0]

    def to_us(self, values: Sequence[Any]) -> np.ndarray:
        """Database values (None allowed) -> ``datetime64[us]`` (missing -> NaT). SQLite:
        ISO text, or integers (``scores``' times: microseconds since the epoch, which is
        how numpy reads an integer as ``datetime64[us]``)."""
        if self.text:
            return np.array(values, dtype="datetime64[us]")
        micros = [None if v is None else (v - EPOCH) // _US for v in values]
        return np.array([np.iinfo(np.int64).min if m is None else m for m in micros], "int64").view(
            "datetime64[us]"
        )

    def decode(self, values: pd.Series) -> pd.Series:
        """Database values -> ``datetime64[us, UTC]`` (missing -> NaT). Microseconds, not
        pandas' nanoseconds: the store keeps microseconds, and every time a writer accepts
        (years 1 to 9999) must read back; nanoseconds end in 2262."""
        try:
            us = self.to_us(values.tolist())
        except (TypeError, ValueError, OverflowError):  # not the store's own format
            parsed = pd.to_datetime(values.astype(object), utc=True, format="ISO8601")
            return parsed.dt.as_unit("us")
        return pd.Series(us, index=values.index, name=values.name).dt.tz_localize(UTC)


_DAY_US = 86_400_000_000


@functools.cache
def _clock_tables() -> tuple[np.ndarray, np.ndarray]:
    """``HH:MM:SS`` of each second of a day (``S8``, 0.7 MB) and the 3 digits of 0-999
    (``S3``): built once, on first use (~2 ms)."""
    d2 = np.array([f"{i:02d}" for i in range(60)], dtype="S2").view(np.uint8).reshape(60, 2)
    sec = np.arange(86_400)
    hms = np.empty((86_400, 8), dtype=np.uint8)
    hms[:, 0:2] = d2[sec // 3600 % 60]  # hours < 24
    hms[:, 3:5] = d2[sec // 60 % 60]
    hms[:, 6:8] = d2[sec % 60]
    hms[:, 2] = hms[:, 5] = ord(":")
    d3 = np.array([f"{i:03d}" for i in range(1000)], dtype="S3")
    return hms.view("S8").ravel(), d3


def _iso_record(zone: bool) -> np.dtype:
    """One ISO text row and its newline as a record of fixed-width byte fields."""
    names = ["date", "T", "hms", "dot", "ms", "us", *(["Z"] if zone else []), "nl"]
    sizes = [10, 1, 8, 1, 3, 3, *([1] if zone else []), 1]
    return np.dtype({"names": names, "formats": [f"S{k}" for k in sizes],
                     "offsets": np.cumsum([0, *sizes[:-1]]).tolist(), "itemsize": sum(sizes)})  # fmt: skip


_ISO = {zone: _iso_record(zone) for zone in (False, True)}


def iso_text(us: np.ndarray, zone: bool = False) -> list[str] | None:
    """``np.datetime_as_string(us, unit="us")`` (``zone``: with a ``Z``) as a list, ~2x
    faster for a batch of distinct times: each row's fields are gathered from tables
    (the dates, few per batch, formatted once; ``HH:MM:SS`` of every second of a day;
    the digits of 0-999 for the fraction) into one buffer of newline-ended rows, decoded
    once and split. None when it does not apply (NaT, years outside 0001-9999, fewer
    than 64 values): use ``np.datetime_as_string``."""
    t = np.asarray(us).astype("datetime64[us]", copy=False).view("int64").ravel()
    n = len(t)
    if n < 64 or np.isnat(t.view("datetime64[us]")).any():
        return None
    day, tod = np.divmod(t, _DAY_US)
    lo, hi = int(day.min()), int(day.max())
    if lo < -719_162 or hi > 2_932_896:  # years 0001-9999: 'YYYY-MM-DD'
        return None
    if hi - lo < 4096:  # the usual few days: format each day of the span
        days, inverse = np.arange(lo, hi + 1), day - lo
    else:
        days, inverse = np.unique(day, return_inverse=True)
    hms, d3 = _clock_tables()
    secs, frac = np.divmod(tod, 1_000_000)
    millis, micros = np.divmod(frac, 1000)
    out = np.empty(n, dtype=_ISO[zone])
    out["date"] = np.datetime_as_string(days.astype("datetime64[D]")).astype("S10")[inverse]
    out["T"] = b"T"
    out["hms"] = hms[secs]
    out["dot"] = b"."
    out["ms"] = d3[millis]
    out["us"] = d3[micros]
    if zone:
        out["Z"] = b"Z"
    out["nl"] = b"\n"
    return out.tobytes()[:-1].decode("ascii").split("\n")


def to_utc_us(values: Any, what: str) -> np.ndarray:
    """Aware datetimes (or numpy datetime64, taken as UTC) -> ``datetime64[us]`` array."""
    if isinstance(values, pd.Series | pd.Index) and values.dtype.kind == "M":
        idx = pd.DatetimeIndex(values)
        if idx.tz is None:
            raise InvalidRowError(
                f"{what} is a naive datetime column: localize it, e.g. "
                "frame[col] = frame[col].dt.tz_localize('UTC')"
            )
        arr = idx.tz_convert(UTC).tz_localize(None).to_numpy().astype("datetime64[us]")
    elif isinstance(values, np.ndarray) and values.dtype.kind == "M":
        arr = values.astype("datetime64[us]")
    else:
        seq = list(values)
        try:
            micros = [(v - EPOCH) // _US for v in seq]
        except TypeError:
            i = next(i for i, v in enumerate(seq) if not _aware(v))
            raise InvalidRowError(
                f"{what} of row {i} is {seq[i]!r}: use a timezone-aware UTC datetime "
                "(e.g. datetime(..., tzinfo=UTC) or pandas datetime64[ns, UTC])"
            ) from None
        arr = np.array(micros, dtype="int64").view("datetime64[us]")
    if np.isnat(arr).any():
        i = int(np.flatnonzero(np.isnat(arr))[0])
        raise InvalidRowError(f"{what} of row {i} is missing (NaT): every row needs a time")
    return arr


def _aware(v: object) -> bool:
    return isinstance(v, datetime) and v.tzinfo is not None and v.utcoffset() is not None


@dataclass(slots=True)
class ScoreBatch:
    """Validated score columns, one row per user (the newest features win), by user id."""

    user_id: list[str]
    risk: np.ndarray  # float64
    model_version: list[str]
    features_time: np.ndarray  # datetime64[us], UTC
    reasons: list[str | None]  # JSON text
    plan: list[str | None]
    monthly_revenue: list[float | None]
    partition: list[int | None]
    active: list[bool]
    # ``user_id`` as a numpy array (``segments.user_array``), once ``validate_scores`` (ASCII
    # ids) or ``latest`` built it: a cache of ``user_id`` (set it to None if you change those)
    users_np: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_id)

    def slice(self, lo: int, hi: int) -> ScoreBatch:
        """Rows ``lo:hi`` (views of the arrays, copies of the lists)."""
        if lo == 0 and hi >= len(self):
            return self
        return ScoreBatch(
            self.user_id[lo:hi], self.risk[lo:hi], self.model_version[lo:hi], self.features_time[lo:hi],
            self.reasons[lo:hi], self.plan[lo:hi], self.monthly_revenue[lo:hi], self.partition[lo:hi],
            self.active[lo:hi], None if self.users_np is None else self.users_np[lo:hi],
        )

    def take(self, idx: Sequence[int] | np.ndarray) -> ScoreBatch:
        ix = np.asarray(idx, dtype=np.int64)
        if len(ix) == 0:
            return ScoreBatch([], self.risk[ix], [], self.features_time[ix], [], [], [], [], [])
        get = gatherer(ix.tolist())
        return ScoreBatch(
            get(self.user_id),
            self.risk[ix],
            get(self.model_version, repeat_one=True),
            self.features_time[ix],
            get(self.reasons, repeat_one=True),
            get(self.plan, repeat_one=True),
            get(self.monthly_revenue, repeat_one=True),
            get(self.partition, repeat_one=True),
            get(self.active, repeat_one=True),
            None if self.users_np is None else self.users_np[ix],
        )


@dataclass(slots=True)
class PointRows:
    """History points of a write (:func:`latest_pair`): only what a history segment holds,
    so picking a flush's points gathers one list column (the model versions) instead of
    every column of its score rows (measured on the stream's flushes: 549,000 points per
    1M events, ~0.4 s of list gathers for columns no segment stores)."""

    users: np.ndarray  # ``segments.user_array`` of the ids
    features_time: np.ndarray  # datetime64[us], UTC
    risk: np.ndarray  # float64
    model_version: list[str]

    def __len__(self) -> int:
        return len(self.features_time)

    @classmethod
    def of(cls, b: ScoreBatch) -> PointRows:
        return cls(_ids(b), b.features_time, b.risk, b.model_version)


def one_value(values: list[Any]) -> bool:
    """Every value is the first one's equal, and interchangeable with it (not a float
    zero: 0.0 == -0.0). A C loop, ~7 us per 10,000; a gather in random order of a batch's
    list costs 0.1-0.5 ms (cache misses), and the model version, plan and ``active`` of a
    write usually have one value. ``bench_store``'s writes (py-spy): those three gathers
    were 18 % of ``latest_pair``; with this, interleaved in one process (30 writes each,
    two runs), ``latest_pair`` 5.55 -> 4.83 and 6.29 -> 4.78 ms a write."""
    if not values:
        return False
    v = values[0]
    return values.count(v) == len(values) and not (v.__class__ is float and v == 0.0)


TAKE_SLICE = 8_192  # rows per C-level gather in :func:`gatherer` (~1 ms each, GIL held)


def gatherer(ix: list[int]) -> Callable[[list[Any]], list[Any]]:
    """``values -> [values[i] for i in ix]`` at C speed (``itemgetter``), at most
    ``TAKE_SLICE`` rows per call: one call holds the GIL throughout, and over a stream
    writer's 140,000-row flush in random order it took 20 ms per column, a stall for
    the batch loop (issue 17's p99).

    ``get(values, repeat_one=True)``: a column of one value (:func:`one_value`: a write's
    model version, plan, ``active``; a chunk's unresolved reasons) is repeated instead of
    gathered, for columns that usually have one (not the ids: the check would cost a
    pass of its own)."""
    picks = [_getter(ix[lo : lo + TAKE_SLICE]) for lo in range(0, len(ix), TAKE_SLICE)]
    n = len(ix)

    def get(values: list[Any], repeat_one: bool = False) -> list[Any]:
        if repeat_one and one_value(values):
            return [values[0]] * n
        out: list[Any] = []
        for pick in picks:
            out += pick(values)
        return out

    return get


def _getter(ix: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """``values -> tuple of values[i] for i in ix`` (``itemgetter`` of one index returns
    the value itself, not a tuple)."""
    if len(ix) == 1:
        i = ix[0]
        return lambda values: (values[i],)
    return operator.itemgetter(*ix)


# Number columns a frame may hand over as its numpy array (by dtype kind): validated
# column-wise, converted with one ``tolist``; any other dtype goes value by value.
_NUMBER_KINDS = {"monthly_revenue": "fiu", "partition": "fiu", "active": "biuf"}


class ScoreColumns(dict[str, Any]):
    """Score rows column-wise without pandas: ``{column: list or numpy array}``, every
    column the same length, ``features_time`` a ``datetime64[us]`` array (UTC) or aware
    datetimes. Validated exactly like a frame; building a DataFrame only to take it apart
    again was ~15 % of the stream writer's CPU (issue 17)."""


def _from_columns(rows: ScoreColumns) -> tuple[dict[str, Any], int]:
    missing = [k for k in REQUIRED if k not in rows]
    if missing:
        raise InvalidRowError(f"score columns lack {missing}: they need {list(REQUIRED)} (optional {list(OPTIONAL)})")
    n = len(rows["user_id"])
    uneven = [k for k in (*REQUIRED, *OPTIONAL) if k in rows and len(rows[k]) != n]
    if uneven:
        raise InvalidRowError(f"score columns {uneven} are not as long as user_id ({n} rows)")
    cols: dict[str, Any] = {}
    for k in (*REQUIRED, *OPTIONAL):
        if k not in rows or k in ("risk", "features_time"):
            continue
        col = rows[k]
        if isinstance(col, np.ndarray) and col.dtype.kind not in _NUMBER_KINDS.get(k, ""):
            col = col.tolist()  # an object column: value by value, as a frame's
        cols[k] = col if isinstance(col, np.ndarray) else list(col)
    cols["features_time"] = rows["features_time"]
    try:
        cols["risk"] = np.asarray(rows["risk"], dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidRowError("risk must be numbers in [0, 1]") from None
    return cols, n


def _columns(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], int]:
    if isinstance(rows, ScoreColumns):
        return _from_columns(rows)
    if isinstance(rows, pd.DataFrame):
        missing = [k for k in REQUIRED if k not in rows.columns]
        if missing:
            raise InvalidRowError(
                f"score frame lacks column(s) {missing}: it needs {list(REQUIRED)} "
                f"(optional {list(OPTIONAL)})"
            )
        cols: dict[str, Any] = {}
        for k in (*REQUIRED, *OPTIONAL):
            if k not in rows.columns or k == "risk":
                continue
            col = rows[k]
            kinds = _NUMBER_KINDS.get(k, "")
            if k == "features_time":
                cols[k] = col
            elif isinstance(col, pd.Series) and isinstance(col.dtype, np.dtype) and col.dtype.kind in kinds:
                cols[k] = col.to_numpy()  # checked column-wise (a bad value: one by one)
            else:
                cols[k] = col.tolist()
        cols["risk"] = rows["risk"].to_numpy(dtype=np.float64, na_value=np.nan)
        return cols, len(rows)
    if isinstance(rows, Mapping | str | bytes):
        raise InvalidRowError(
            "score rows must be a DataFrame or a sequence of mappings, not one row"
        )
    rows = list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise InvalidRowError(f"score row {i} is a {type(r).__name__}, not a mapping")
        for k in REQUIRED:
            if k not in r:
                raise InvalidRowError(f"score row {i} lacks {k!r}: each row needs {list(REQUIRED)}")
    cols = {k: [r[k] for r in rows] for k in REQUIRED}
    for k in OPTIONAL:
        cols[k] = [r.get(k) for r in rows]
    try:
        cols["risk"] = np.array(cols["risk"], dtype=np.float64)
    except (TypeError, ValueError):
        i = next(i for i, v in enumerate(cols["risk"]) if not _is_number(v))
        raise InvalidRowError(
            f"risk of score row {i} (user {rows[i]['user_id']!r}) is {cols['risk'][i]!r}: "
            "it must be a number in [0, 1]"
        ) from None
    return cols, len(rows)


def _is_number(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _ascii_ids(users: list[Any]) -> np.ndarray | None:
    """``users`` as :func:`~pipeline.store.segments.user_array` builds them (fixed-width
    ASCII bytes), when every id is a non-empty ASCII ``str`` without NUL: checked and
    converted at C speed from one NUL-joined text (~3x faster than the set of ids and
    ``np.asarray``). None otherwise (check the ids one by one: :func:`_check_text`)."""
    n = len(users)
    try:
        text = "\x00".join(users)  # TypeError on any non-string
    except TypeError:
        return None
    if not n or not text.isascii():
        return None
    buf = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    sep = buf == 0
    ends = np.flatnonzero(sep)
    if len(ends) != n - 1:  # an id holds a NUL
        return None
    bounds = np.empty(n + 1, dtype=np.int64)
    bounds[0], bounds[1:n], bounds[n] = -1, ends, len(buf)
    lens = np.diff(bounds) - 1
    width = int(lens.max())
    if int(lens.min()) == 0:  # an empty id
        return None
    if int(lens.min()) == width:  # all one length: the rows of the text
        grid = np.empty((n, width + 1), dtype=np.uint8)
        grid.ravel()[:-1] = buf
        out = np.ascontiguousarray(grid[:, :width])
    else:
        out = np.zeros((n, width), dtype=np.uint8)
        row = np.cumsum(sep)  # id of each byte (a separator: of the next id)
        col = np.arange(len(buf)) - (bounds[row] + 1)
        keep = ~sep
        out[row[keep], col[keep]] = buf[keep]
    return out.view(f"S{width}").ravel()


def _check_text(values: list[Any], what: str, users: list[Any], nullable: bool = False) -> None:
    """Every value a non-empty string (or None if ``nullable``); C-speed when all are."""
    try:
        uniq = set(values)
        if nullable:
            uniq.discard(None)
        joined = "".join(uniq)  # TypeError on any non-string
        if "" not in uniq and "\x00" not in joined:
            return
    except TypeError:
        pass
    for i, v in enumerate(values):
        if not (isinstance(v, str) and v and "\x00" not in v) and not (nullable and v is None):
            raise InvalidRowError(
                f"{what} of score row {i} (user {users[i]!r}) is {v!r}: use a non-empty string "
                "without NUL characters"
            )


class ReasonsJSON(str):
    """Reasons already serialised, exactly as :func:`_reasons` would serialise their list
    (``[{"feature": .., "value": .., "contribution": ..}, ..]``, compact, ASCII, finite
    floats): the stream's scorer builds its rows' reasons straight to text
    (:meth:`pipeline.stream.scorer.Scorer.reasons_json`), skipping a dict per reason and
    the encoder (~7 us a row, tens of thousands of rows per 1M events). Taken as given."""

    __slots__ = ()


def reasons_text(names: Sequence[str], idx: np.ndarray, values: np.ndarray,
                 contributions: np.ndarray) -> list[ReasonsJSON]:  # fmt: skip
    """Rows of ``{"feature": names[j], "value": round(v, 4), "contribution": round(c, 4)}``
    (``idx``, ``values``, ``contributions``: (rows, k) arrays) as the text
    :func:`_json_text` gives their list (tested equal); every float must be finite (the
    encoder refuses NaN and infinity: check before)."""
    rows, k = idx.shape
    if not rows:
        return []
    keys = [f'{{"feature":{json.encoder.encode_basestring_ascii(n)},"value":' for n in names]
    # One %-format per row over its (key, value, contribution) texts, grouped by zip at C
    # speed: a comprehension per row with an f-string per reason cost 7.6 us a row of 3
    # reasons (27,000 rows a 1M-event stream run), this 4.0-4.1 (of which the 6 float
    # reprs ~1.4, the format ~1.0).
    row = "[" + ",".join(['%s%s,"contribution":%s}'] * k) + "]"
    texts = chain.from_iterable(zip(
        map(keys.__getitem__, idx.ravel().tolist()),
        map(float.__repr__, round4(values).ravel().tolist()),
        map(float.__repr__, round4(contributions).ravel().tolist()),
        strict=True,
    ))  # fmt: skip
    return list(map(ReasonsJSON, map(row.__mod__, zip(*[texts] * (3 * k), strict=True))))


_ROUND4_EXACT = 2.0**40  # |x| * 1e4 below this: the product is within 2**-13 of exact


def round4(a: np.ndarray) -> np.ndarray:
    """``round(x, 4)`` of every element (float64), bit for bit as Python's ``round``.

    Python rounds the exact binary value to 4 decimals (half to even) and returns the
    float nearest that decimal, through a decimal string (~0.4 us a value). Vectorised:
    below 2**40, ``x * 1e4`` is within 2**-13 of exact, so unless its fraction lies within
    1e-3 of one half, ``rint`` of it is the exact decimal rounding ``k``, and ``k / 1e4``
    (both exact, the quotient correctly rounded) is the nearest float to ``k / 10**4``:
    Python's answer. The rest (near-ties, large or non-finite values) go through
    ``round`` itself."""
    y = a * 1e4
    out = np.rint(y) / 1e4
    near = np.abs(np.abs(y - np.trunc(y)) - 0.5) < 1e-3
    risky = near | ~(np.abs(y) < _ROUND4_EXACT)
    if risky.any():
        flat, src = out.reshape(-1), a.reshape(-1)
        for i in np.flatnonzero(risky.reshape(-1)).tolist():
            flat[i] = round(float(src[i]), 4)
    return out


def _reasons(values: list[Any], users: list[str]) -> list[str | None]:
    """Serialise reasons to JSON text once (validating them on the way); most rows have
    none (only high-risk users are explained), so those cost one comparison."""
    out: list[str | None] = [None] * len(values)
    for i in [i for i, v in enumerate(values) if v is not None]:
        v = values[i]
        if v.__class__ is ReasonsJSON:
            out[i] = str.__str__(v)  # already text (a plain str for the drivers)
            continue
        if isinstance(v, float) and math.isnan(v):
            continue
        try:
            out[i] = _json_text(v)
        except (TypeError, ValueError, RecursionError) as exc:
            raise InvalidRowError(
                f"reasons of score row {i} (user {users[i]!r}) are not JSON ({exc}): use a "
                "list of {'feature': str, 'contribution': float} with finite floats"
            ) from None
    return out


def _optional_floats(values: list[Any] | np.ndarray, what: str,
                     users: list[str]) -> list[float | None]:  # fmt: skip
    if isinstance(values, np.ndarray):  # a frame's number column (_NUMBER_KINDS)
        arr = values.astype(np.float64)
        if not bool((np.isinf(arr) | (arr < 0)).any()):
            out: list[float | None] = arr.tolist()
            for i in np.flatnonzero(np.isnan(arr)).tolist():
                out[i] = None
            return out
        values = values.tolist()  # a bad value: named below
    try:
        arr = np.asarray(values, dtype=np.float64)  # None -> NaN, read as missing
    except (TypeError, ValueError):
        arr = np.array([v if _is_number(v) else np.inf for v in values], dtype=np.float64)
    bad = np.isinf(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidRowError(
            f"{what} of score row {i} (user {users[i]!r}) is {values[i]!r}: use a finite "
            "number >= 0 or None"
        )
    return [None if v != v else v for v in arr.tolist()]


def _flags(values: Any, n: int, users: list[str]) -> list[bool]:
    """The ``active`` column: booleans (numpy's too); a missing column or None is True."""
    if values is None:
        return [True] * n
    if isinstance(values, np.ndarray):
        if values.dtype == np.bool_:
            return values.tolist()
        if values.dtype.kind in "iuf" and bool(((values == 0) | (values == 1)).all()):
            return (values != 0).tolist()
        values = values.tolist()
    if set(values) <= {True, False}:  # C-speed check (numpy bools and 0/1 hash alike)
        return [bool(v) for v in values]
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(True)
        elif isinstance(v, bool | np.bool_) or (isinstance(v, int | np.integer) and v in (0, 1)):
            out.append(bool(v))
        else:
            raise InvalidRowError(
                f"active of score row {i} (user {users[i]!r}) is {v!r}: use True (subscribed) "
                "or False (cancelled)"
            )
    return out


def _partitions(values: list[Any] | np.ndarray) -> list[int | None]:
    """The ``partition`` column as ints (a float is truncated) or None (None, NaN)."""
    if isinstance(values, np.ndarray):  # a frame's number column (_NUMBER_KINDS)
        if values.dtype.kind in "iu":
            return values.tolist()
        missing = np.isnan(values)
        if bool((np.abs(values[~missing]) < 2.0**63).all()):  # int64 truncates as int()
            out: list[int | None] = np.where(missing, 0, values).astype(np.int64).tolist()
            for i in np.flatnonzero(missing).tolist():
                out[i] = None
            return out
        values = values.tolist()  # inf: int() raises below
    return [None if p is None or p != p else int(p) for p in values]


def score_batch(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> ScoreBatch:
    """Validate score rows; keep one row per user (latest ``features_time``, then last)."""
    return latest(validate_scores(rows))


def validate_scores(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> ScoreBatch:
    """Validate score rows, all of them, in the order given."""
    cols, n = _columns(rows)
    users: list[Any] = cols["user_id"]
    ids = _ascii_ids(users)  # the usual ASCII ids: checked at C speed, kept for ``latest``
    if ids is None:
        _check_text(users, "user_id", users)
    risk = cols["risk"]
    bad = ~(np.isfinite(risk) & (risk >= 0.0) & (risk <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidRowError(
            f"risk of score row {i} (user {users[i]!r}) is {float(risk[i])!r}: it must be a finite "
            f"probability in [0, 1] ({int(bad.sum())} bad row(s) in this batch); a NaN usually "
            "means a missing feature or a broken model: fix the scorer, the batch was not written"
        )
    _check_text(cols["model_version"], "model_version", users)
    times = to_utc_us(cols["features_time"], "features_time")
    # an absent optional column is None in every row: nothing to check or convert (history
    # points, e.g. the stream writer's evictions, come as the four required columns only)
    nothing = [None] * n
    active = _flags(cols.get("active"), n, users)
    if "plan" in cols:
        _check_text(cols["plan"], "plan", users, nullable=True)
    return ScoreBatch(
        users,
        risk,
        cols["model_version"],
        times,
        _reasons(cols["reasons"], users) if "reasons" in cols else nothing,
        cols.get("plan", nothing),
        _optional_floats(cols["monthly_revenue"], "monthly_revenue", users) if "monthly_revenue" in cols else nothing,
        _partitions(cols["partition"]) if "partition" in cols else nothing,
        active,
        ids,
    )


def latest(batch: ScoreBatch, buckets: np.ndarray | None = None) -> ScoreBatch:
    """One row per user (latest ``features_time``, then last given) -- or, given each
    row's ``buckets``, one per (user, bucket) -- in key order: writing in key order
    touches B-tree pages in order (SQLite: ~2x faster on big tables).

    One ``np.argsort`` of the ids when each user is there once (the usual flush), else
    one ``np.lexsort`` (C) instead of a dict and a Python sort: ~4x less writer-thread
    CPU on a 30,000-row flush. Code-point order of the ids is SQLite's and PostgreSQL
    ``COLLATE "C"`` order of their UTF-8 bytes; ASCII ids whose differing byte positions
    are at most 8 sort as one ``uint64`` each (:func:`_sort_key`). The result keeps the
    ids' array (``users_np``) for the history segment."""
    n = len(batch)
    if n <= 1:
        return batch
    users, key = _keyed(batch)
    order = None
    if buckets is None:  # usually every user once: one sort by id, then check that
        order = np.argsort(key)  # ids unique: any sort gives this order
        u = key[order]
        if bool((u[1:] == u[:-1]).any()):
            order = None
    if order is None:
        t = batch.features_time.view("int64")
        keys = (np.arange(n), t) + (() if buckets is None else (buckets.view("int64"),)) + (key,)
        order = np.lexsort(keys)  # by user, (bucket,) time, position
        u = key[order]
    last = np.empty(n, dtype=bool)
    last[-1] = True
    last[:-1] = u[1:] != u[:-1]
    if buckets is not None:
        b = buckets.view("int64")[order]
        last[:-1] |= b[1:] != b[:-1]
    return _pick(batch, users, order[last])


def _keyed(batch: ScoreBatch) -> tuple[np.ndarray, np.ndarray]:
    """The ids' array (:func:`_ids`) and its sort key."""
    users = _ids(batch)
    return users, _sort_key(users)


def _ids(batch: ScoreBatch) -> np.ndarray:
    """The ids' array ``users_np``, built and kept if missing or stale (ASCII ids as bytes
    from ``validate_scores`` sort alike and convert faster)."""
    users = batch.users_np
    if users is None or len(users) != len(batch):
        users = batch.users_np = user_array(batch.user_id)
    return users


def latest_pair(batch: ScoreBatch, buckets: np.ndarray) -> tuple[ScoreBatch, PointRows]:
    """``(latest(batch), latest(batch, buckets))`` -- a write's current scores and its
    history points -- from **one** stable sort by user when each user's rows come in time
    order (a stream flush: the rows of a partition in processing order): then the last
    row of a user is its newest (ties: the last given) and its rows of a bucket are
    adjacent, so the two answers are the last row of each user and of each (user,
    bucket). Measured on a 150,000-row flush of 55,000 users over 3 days: 97 -> ~75 ms.
    Rows out of time order fall back to the two general sorts (:func:`latest`)."""
    n = len(batch)
    if n <= 1:
        return batch, PointRows.of(batch)
    users, key = _keyed(batch)
    order = np.argsort(key, kind="stable")  # equal ids keep the given order
    u = key[order]
    same = u[1:] == u[:-1]
    t = batch.features_time.view("int64")[order]
    if bool((same & (t[1:] < t[:-1])).any()):  # some user's rows are not in time order
        return latest(batch), PointRows.of(latest(batch, buckets))
    b = buckets.view("int64")[order]
    last_user = np.empty(n, dtype=bool)
    last_user[-1] = True
    last_user[:-1] = ~same
    last_point = last_user.copy()
    last_point[:-1] |= b[1:] != b[:-1]
    scores = _pick(batch, users, order[last_user])
    if bool(last_point.sum() == last_user.sum()):  # no user has points in two buckets
        return scores, PointRows.of(scores)
    pick = order[last_point]
    return scores, PointRows(users[pick], batch.features_time[pick], batch.risk[pick],
                             gatherer(pick.tolist())(batch.model_version, repeat_one=True))  # fmt: skip


def _pick(batch: ScoreBatch, users: np.ndarray, pick: np.ndarray) -> ScoreBatch:
    """The rows ``pick`` (ids' order), keeping their ids' array; ``batch`` itself when
    that is every row as given (unique and in order)."""
    if len(pick) == len(batch) and bool((pick[1:] > pick[:-1]).all()):
        batch.users_np = users
        return batch
    out = batch.take(pick)
    out.users_np = users[pick]
    return out


def _sort_key(users: np.ndarray) -> np.ndarray:
    """A ``uint64`` per id with the order and equality of ``users`` (a ``user_array`` of
    ASCII ids: fixed-width, zero-padded), when the byte positions where ids differ are at
    most 8; else ``users``. Positions where every id has the same byte never decide a
    comparison, so the others, packed big-endian (the first most significant), compare
    as the ids do: byte by byte, and a zero pad (a shorter id, NUL-free) first. An integer
    sort is ~5x faster than numpy's sort of byte strings."""
    if users.dtype.kind != "S" or len(users) < 2:
        return users
    grid = np.ascontiguousarray(users).view(np.uint8).reshape(len(users), users.dtype.itemsize)
    cols = np.flatnonzero((grid != grid[0]).any(axis=0))
    if len(cols) > 8:
        return users
    packed = np.zeros((len(users), 8), dtype=np.uint8)
    packed[:, 8 - len(cols) :] = grid[:, cols]
    return packed.view(">u8").ravel().astype(np.uint64)


def check_time(value: datetime, what: str) -> datetime:
    """A timezone-aware datetime, converted to UTC; else ``InvalidRowError``."""
    if not _aware(value):
        raise InvalidRowError(f"{what} is {value!r}: use a timezone-aware UTC datetime")
    return value.astimezone(UTC)


def time_us(value: datetime, what: str) -> int:
    """A timezone-aware datetime (checked as :func:`check_time`) as int64 microseconds since
    the epoch (UTC): the unit of history segments."""
    return int(to_utc_us([check_time(value, what)], what).view("int64")[0])
