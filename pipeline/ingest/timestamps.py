"""Source timestamps -> exact UTC epoch microseconds, vectorised per batch.

* ``epoch_unit`` (s / ms / us / ns): numbers are UTC by definition.
* ``format`` (a strptime format, or ``ISO8601``): values with an offset (``Z``, ``+02:00``,
  ``%z``) are converted to UTC; values without one are read in ``timezone`` and rejected
  when the mapping gives none (a naive time is never guessed to be UTC). Local times that
  do not exist or are ambiguous (DST changes) are rejected, not shifted.

Values outside 1971..2199 are rejected: they are almost always a wrong epoch unit.
"""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.ingest.mapping import EPOCH_UNITS, SourceMapping

MIN_YEAR, MAX_YEAR = 1971, 2200  # accepted: MIN_YEAR <= year < MAX_YEAR
MIN_US = int(datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
MAX_US = int(datetime(MAX_YEAR, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
_NAT = np.iinfo(np.int64).min
_WHOLE = re.compile(r"-?[0-9]{1,20}").fullmatch


def parse_timestamps(col: pa.Array | pa.ChunkedArray, m: SourceMapping) -> tuple[np.ndarray, list[str | None]]:
    """``(microseconds, error per row or None)``; erroneous rows hold 0."""
    n = len(col)
    errors: list[str | None] = [None] * n
    if m.epoch_unit is not None:
        us = _epoch(col, m.epoch_unit, errors)
    else:
        us = _formatted(col, m, errors)
    bad = (us < MIN_US) | (us >= MAX_US)
    for i in np.flatnonzero(bad).tolist():
        if errors[i] is None:
            errors[i] = ("timestamp: outside 1971..2199 (wrong epoch_unit?)" if m.epoch_unit
                         else "timestamp: outside 1971..2199")
    us[bad] = 0
    return us, errors


def _epoch(col, unit: str, errors: list[str | None]) -> np.ndarray:
    if isinstance(col, pa.Array | pa.ChunkedArray) and pa.types.is_string(col.type):
        for target in (pa.int64(), pa.float64()):  # read as text: the usual all-numbers column, fast
            try:
                col = pc.cast(col, target)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
    s = col.to_pandas() if hasattr(col, "to_pandas") else pd.Series(col)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_integer_dtype(s.dtype):  # exact integer arithmetic (ns and large values)
        ints = s.to_numpy(dtype=np.int64)
        us = ints // 1000 if unit == "ns" else ints * int(EPOCH_UNITS[unit])
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            f = np.round(num * EPOCH_UNITS[unit])
            f[~np.isfinite(f) | (np.abs(f) > 9e18)] = 0
            us = f.astype(np.int64)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):  # read as text: whole numbers exactly
        whole = s.astype(object).map(lambda v: isinstance(v, str) and _WHOLE(v) is not None).to_numpy(bool)
        if whole.any():
            k = int(EPOCH_UNITS[unit]) if unit != "ns" else 0
            exact = [int(v) // 1000 if unit == "ns" else int(v) * k for v in s[whole].tolist()]
            us[whole] = [v if abs(v) < 9e18 else 0 for v in exact]  # 0: rejected as out of range below
    missing = np.isnan(num)
    if missing.any():
        raw = s.tolist()
        for i in np.flatnonzero(missing).tolist():
            errors[i] = "timestamp: empty" if raw[i] is None or raw[i] == "" else "timestamp: not a number"
        us[missing] = 0
    return us


def _formatted(col, m: SourceMapping, errors: list[str | None]) -> np.ndarray:
    s = col.to_pandas() if hasattr(col, "to_pandas") else pd.Series(col, dtype=object)
    s = s.astype(object).where(s.notna(), None)
    fmt = m.ts_format
    try:
        with warnings.catch_warnings():  # mixed offsets: pandas 2 warns and returns objects, 3 raises
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(s, format=fmt, errors="coerce")
        us = _to_utc_us(parsed, m.timezone)
        if us is None:  # naive values without a zone
            for i, v in enumerate(s.tolist()):
                errors[i] = "timestamp: empty" if v is None else (
                    "timestamp: no zone in the value and timestamp.timezone is not set")
            return np.zeros(len(s), np.int64)
    except (ValueError, TypeError):  # mixed offsets / mixed naive and aware: value by value
        us = _one_by_one(s.tolist(), m)
    raw = s.tolist()
    for i in np.flatnonzero(us == _NAT).tolist():
        v = raw[i]
        if v is None or v == "":
            errors[i] = "timestamp: empty"
        elif errors[i] is None:
            errors[i] = _why(v, m)
    us[us == _NAT] = 0
    return us


def _to_utc_us(parsed: pd.Series, zone: str | None) -> np.ndarray | None:
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        idx = pd.DatetimeIndex(parsed).tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(parsed.dtype):
        if zone is None:
            return None if parsed.notna().any() else np.full(len(parsed), _NAT, np.int64)
        idx = pd.DatetimeIndex(parsed).tz_localize(zone, ambiguous="NaT", nonexistent="NaT").tz_convert("UTC")
    else:  # object: pandas could not unify (mixed zones)
        raise ValueError("mixed")
    out = idx.as_unit("us").asi8.copy()
    return out


def _one_by_one(values: list, m: SourceMapping) -> np.ndarray:
    zone = ZoneInfo(m.timezone) if m.timezone else None
    out = np.full(len(values), _NAT, np.int64)
    for i, v in enumerate(values):
        if v is None or v == "":
            continue
        try:
            t = (datetime.fromisoformat(str(v).replace("Z", "+00:00")) if m.ts_format == "ISO8601"
                 else datetime.strptime(str(v), m.ts_format))
        except ValueError:
            continue
        if t.tzinfo is None:
            if zone is None:
                continue
            t = _localize(t, zone)
            if t is None:
                continue
        out[i] = (t - datetime(1970, 1, 1, tzinfo=UTC)) // pd.Timedelta(microseconds=1).to_pytimedelta()
    return out


def _localize(t: datetime, zone: ZoneInfo) -> datetime | None:
    """Local wall time -> aware, or None if it does not exist / is ambiguous in ``zone``."""
    a, b = t.replace(tzinfo=zone, fold=0), t.replace(tzinfo=zone, fold=1)
    if a.utcoffset() != b.utcoffset():
        return None  # ambiguous (repeated hour) or nonexistent (skipped hour)
    return a


def _digits_only(fmt: str) -> bool:
    """A strptime format whose values are digits alone (``%Y%m%d``, ``%Y%m%d%H%M%S``)."""
    return fmt != "ISO8601" and re.fullmatch(r"(%[YmdHMSjyf])+", fmt) is not None


def _why(v, m: SourceMapping) -> str:
    """The reason one value failed (stable text: rejections are counted by reason)."""
    # 1767227814190: an epoch number, not text - unless the format is all digits itself (%Y%m%d%H%M%S)
    if _WHOLE(str(v).strip()) and len(str(v).strip()) >= 9 and not _digits_only(m.ts_format):
        return f"timestamp: an epoch number, not text in format {m.ts_format!r} (use timestamp.epoch_unit)"
    try:
        t = (datetime.fromisoformat(str(v).replace("Z", "+00:00")) if m.ts_format == "ISO8601"
             else datetime.strptime(str(v), m.ts_format))
    except ValueError:
        return f"timestamp: does not match format {m.ts_format!r}"
    if not MIN_YEAR <= t.year < MAX_YEAR:  # parsed, but beyond pandas' range (years 1, 9999: placeholders)
        return "timestamp: outside 1971..2199"
    if t.tzinfo is None and m.timezone is None:
        return "timestamp: no zone in the value and timestamp.timezone is not set"
    if t.tzinfo is None:
        return f"timestamp: local time does not exist or is ambiguous in {m.timezone} (DST change)"
    return f"timestamp: cannot convert {v!r}"
