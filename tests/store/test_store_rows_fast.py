"""The fast paths of ``pipeline.store.rows`` against the straightforward ones, on random
batches: ASCII ids checked and converted from one joined text (``_ascii_ids``), sorted as
``uint64`` keys (``_sort_key``), a frame's number columns checked column-wise, and
``iso_text``. Same values, same types, same errors."""

from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import InvalidRowError
from pipeline.store import rows as R
from pipeline.store.segments import user_array

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NUMBER_COLUMNS = ("monthly_revenue", "partition", "active")
FIELDS = ("user_id", "model_version", "reasons", "plan", "monthly_revenue", "partition", "active")


@contextmanager
def straightforward(monkeypatch: pytest.MonkeyPatch):
    """The plain paths: ids checked one by one and sorted as numpy strings."""
    with monkeypatch.context() as m:
        m.setattr(R, "_ascii_ids", lambda users: None)
        m.setattr(R, "_sort_key", lambda users: users)
        yield


def as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its number columns as object columns (checked value by value)."""
    return frame.astype({c: object for c in NUMBER_COLUMNS if c in frame.columns})


def as_columns(frame: pd.DataFrame) -> R.ScoreColumns:
    """The frame as the stream writer hands rows over: numpy columns, times ``datetime64[us]``."""
    cols = {c: frame[c].to_numpy() for c in frame.columns}
    cols["features_time"] = frame["features_time"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype(
        "datetime64[us]")  # fmt: skip
    if "reasons" in frame.columns:
        cols["reasons"] = frame["reasons"].tolist()
    return R.ScoreColumns(cols)


def ids(rng: np.random.Generator, n: int, kind: str) -> list[str]:
    if kind == "fixed":  # the simulator's ids: 8 ASCII bytes
        return [f"u{i:07d}" for i in rng.integers(0, 300, n)]
    if kind == "prefix":  # prefixes of each other, lengths 1-6
        return [f"u{i}" for i in rng.integers(0, 120, n)] + (["u", "u1", "u10", "u100"] if n > 4 else [])
    if kind == "long":  # more than 8 differing positions: numpy's string sort
        return ["".join(rng.choice(list("abcz019-"), int(rng.integers(1, 14)))) for _ in range(n)]
    if kind == "common":  # long ids, few differing positions (a shared prefix and suffix)
        return [f"tenant-42/user-{i:05d}-x" for i in rng.integers(0, 200, n)]
    if kind == "unicode":
        return [str(rng.choice(["ü", "a", "é1", "zz", "\u4e2d", "a\u00ff", "b"])) + str(i)
                for i in rng.integers(0, 30, n)]  # fmt: skip
    if kind == "edge":  # high ASCII bytes, punctuation, one character
        return [str(rng.choice(["\x7f", "~", " ", "!", "A", "a", "\x01", "\x7f\x7f", "0"])) for _ in range(n)]
    raise AssertionError(kind)


def frame(rng: np.random.Generator, n: int, kind: str) -> pd.DataFrame:
    users = ids(rng, n, kind)
    n = len(users)
    revenue = rng.choice([9.99, 13.99, 0.0, np.nan], n)
    partition = rng.integers(0, 8, n)
    cols: dict[str, Any] = {
        "user_id": users,
        "risk": rng.random(n),
        "model_version": rng.choice(["3", "4"], n).astype(object) if rng.random() < 0.5 else "3",
        "features_time": pd.Series(pd.to_datetime(T0) + pd.to_timedelta(rng.integers(0, 5, n), unit="h")),
        "reasons": [[{"feature": "x", "contribution": float(r)}] if r > 0.8 else None for r in rng.random(n)],
        "plan": [None if r < 0.2 else "basic" for r in rng.random(n)],
        "monthly_revenue": revenue if rng.random() < 0.5 else np.where(np.isnan(revenue), 0, revenue * 100).astype(np.int64),
        "partition": partition if rng.random() < 0.5 else np.where(rng.random(n) < 0.1, np.nan, partition + 0.5),
        "active": rng.random(n) < 0.9 if rng.random() < 0.5 else (rng.random(n) < 0.9).astype(np.int64),
    }  # fmt: skip
    out = pd.DataFrame(cols)
    drop = [c for c in NUMBER_COLUMNS if rng.random() < 0.15]
    return out.drop(columns=drop)


def assert_same(got: R.ScoreBatch, want: R.ScoreBatch) -> None:
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        assert type(a) is list and a == b, name
        assert [type(v) for v in a] == [type(v) for v in b], name
    np.testing.assert_array_equal(got.risk, want.risk)
    assert got.risk.dtype == want.risk.dtype
    np.testing.assert_array_equal(got.features_time, want.features_time)
    assert got.features_time.dtype == want.features_time.dtype
    if want.users_np is not None:
        assert got.users_np is not None and got.users_np.dtype == want.users_np.dtype
        np.testing.assert_array_equal(got.users_np, want.users_np)


def assert_same_points(got: R.PointRows, want: R.ScoreBatch) -> None:
    """History points hold a segment's columns: ids (as their array), times, risks, versions."""
    assert isinstance(got, R.PointRows) and len(got) == len(want)
    np.testing.assert_array_equal(got.users, user_array(want.user_id))
    assert got.users.dtype == user_array(want.user_id).dtype
    np.testing.assert_array_equal(got.features_time, want.features_time)
    np.testing.assert_array_equal(got.risk, want.risk)
    assert type(got.model_version) is list and got.model_version == want.model_version


def reference_latest(batch: R.ScoreBatch, buckets: np.ndarray | None = None) -> list[int]:
    """Positions kept: per user (and bucket), the newest time, then the last given; by id."""
    t = batch.features_time.view("int64").tolist()
    b = [0] * len(t) if buckets is None else buckets.view("int64").tolist()
    best: dict[tuple[str, int], int] = {}
    for i, u in enumerate(batch.user_id):
        j = best.get((u, b[i]))
        if j is None or t[i] >= t[j]:
            best[(u, b[i])] = i
    return [best[k] for k in sorted(best, key=lambda k: (k[0], k[1]))]


KINDS = ["fixed", "prefix", "long", "common", "unicode", "edge"]


@pytest.mark.parametrize("kind", KINDS)
def test_fast_paths_match_the_straightforward_ones(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    for trial in range(40):
        n = int(rng.choice([2, 3, 5, 64, 300, 1000]))
        f = frame(rng, n, kind)
        if trial % 5 == 0:  # each user once (the usual flush)
            f = f.drop_duplicates("user_id")
        fast = R.validate_scores(f)
        buckets = (fast.features_time.view("int64") // 7_200_000_000).view("datetime64[us]")
        with straightforward(monkeypatch):
            plain = R.validate_scores(as_objects(f))
            plain_latest = R.latest(R.validate_scores(as_objects(f)))
            plain_buckets = R.latest(R.validate_scores(as_objects(f)), buckets)
        records = R.validate_scores(f.to_dict("records"))  # the mappings path
        assert_same(fast, plain)
        assert_same(fast, records)
        assert_same(R.validate_scores(as_columns(f)), fast)  # the columns path
        got = R.latest(R.validate_scores(f))
        assert_same(got, plain_latest)
        assert got.user_id == [fast.user_id[i] for i in reference_latest(fast)]
        assert got.users_np is not None
        np.testing.assert_array_equal(got.users_np, user_array(got.user_id))
        assert got.users_np.dtype == user_array(got.user_id).dtype
        by_bucket = R.latest(R.validate_scores(f), buckets)
        assert_same(by_bucket, plain_buckets)
        assert by_bucket.user_id == [fast.user_id[i] for i in reference_latest(fast, buckets)]
        pair = R.latest_pair(R.validate_scores(f), buckets)  # out of time order: the general sorts
        assert_same(pair[0], got)
        assert_same_points(pair[1], by_bucket)
        timed = f.sort_values("features_time", kind="stable")  # a flush: each user's rows in time order
        every = R.validate_scores(timed)
        b = (every.features_time.view("int64") // 7_200_000_000).view("datetime64[us]")
        scores, points = R.latest_pair(R.validate_scores(timed), b)
        assert_same(scores, R.latest(R.validate_scores(timed)))
        assert_same_points(points, R.latest(R.validate_scores(timed), b))


def test_ascii_ids_are_user_array_or_none() -> None:
    rng = np.random.default_rng(7)
    for kind in ("fixed", "prefix", "long", "common", "edge"):
        for n in (1, 2, 10, 500):
            users = ids(rng, n, kind)
            got = R._ascii_ids(users)
            want = user_array(users)
            assert got is not None and got.dtype == want.dtype and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
    for bad in ([], ["a", ""], [""], ["a", "b\x00c"], ["a\x00"], ["\x00"], ["a", 1], ["a", None],
                ["a", b"b"], ["ü"], ["a", "b", "ü"]):  # fmt: skip
        assert R._ascii_ids(bad) is None, bad


def test_sort_key_orders_and_compares_as_the_ids() -> None:
    rng = np.random.default_rng(8)
    cases = [["u1", "u10", "u", "u2", "u1", "v", "u0"], ["ab", "abc", "a", "b"], ["\x7f", "\x01", "~"]]
    cases += [ids(rng, 400, kind) for kind in ("fixed", "prefix", "long", "common", "edge")]
    for users in cases:
        arr = user_array(users)
        key = R._sort_key(arr)
        order = np.argsort(key, kind="stable")
        assert [users[i] for i in order] == sorted(users)
        same = key[:, None] == key[None, :]
        assert (same == (np.array(users, dtype=object)[:, None] == np.array(users, dtype=object)[None, :])).all()
    assert R._sort_key(user_array(ids(rng, 50, "common"))).dtype == np.uint64
    long_ids = user_array([f"{i:012d}" for i in range(10**11, 10**11 + 1_000_000_000_001, 111_111_111_111)])
    assert R._sort_key(long_ids) is long_ids  # 12 differing positions: numpy's sort


def error_of(call: Any) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


def good(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)],
        "risk": np.linspace(0, 1, n),
        "model_version": "3",
        "features_time": pd.Series(pd.date_range(T0, periods=n, freq="s")),
        "monthly_revenue": np.full(n, 9.5),
        "partition": np.arange(n),
        "active": np.ones(n, bool),
    })  # fmt: skip


BAD: list[tuple[str, Any]] = [
    ("user_id", ["u0", "u1", "", "u3", "u4"]),
    ("user_id", ["u0", "u1", "u\x002", "u3", ""]),
    ("user_id", ["u0", 1, "u2", "u3", "u4"]),
    ("user_id", ["u0", None, "u2", "u3", "ü"]),
    ("user_id", ["u0", "ü", "", "u3", "u4"]),
    ("risk", [0.1, np.nan, 0.2, 2.0, 0.3]),
    ("monthly_revenue", [1.0, np.inf, -1.0, 2.0, 3.0]),
    ("monthly_revenue", [1.0, 2.0, 3.0, -0.5, np.nan]),
    ("monthly_revenue", np.array([1, 2, -3, 4, 5])),
    ("monthly_revenue", np.array([1, 2, 3, 4, -5], dtype=np.int8)),
    ("partition", [1.0, np.inf, 2.0, 3.0, 4.0]),
    ("partition", [1.0, np.nan, 2.0, -np.inf, 4.0]),
    ("active", np.array([1, 0, 2, 1, 1])),
    ("active", np.array([1.0, 0.0, np.nan, 1.0, 0.5])),
    ("active", np.array([1, 0, -1, 1, 1], dtype=np.int16)),
]


@pytest.mark.parametrize(("column", "values"), BAD, ids=[f"{c}-{i}" for i, (c, _) in enumerate(BAD)])
def test_bad_values_raise_the_same_error(column: str, values: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    f = good().assign(**{column: values})
    with straightforward(monkeypatch):
        want = error_of(lambda: R.validate_scores(as_objects(f)))
    assert error_of(lambda: R.validate_scores(f)) == want
    assert error_of(lambda: R.validate_scores(as_columns(f))) == want
    if column not in NUMBER_COLUMNS:
        return
    got = error_of(lambda: R.validate_scores(f))
    assert got[0] in (InvalidRowError, OverflowError), got


def test_number_columns_keep_values_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Big and odd numbers convert as the value-by-value path converts them."""
    f = good(6).assign(
        monthly_revenue=np.array([0, 2**62, 3, 2**53 + 1, 7, 1], dtype=np.uint64),
        partition=np.array([-0.5, 2.0**62, 1.9, -1.9, np.nan, 9.0e15 + 0.5], dtype=np.float64),
        active=np.array([1.0, -0.0, 0.0, 1.0, 1.0, 0.0], dtype=np.float32),
    )
    with straightforward(monkeypatch):
        want = R.validate_scores(as_objects(f))
    got = R.validate_scores(f)
    assert_same(got, want)
    assert got.partition[4] is None and got.partition[0] == 0
    f2 = good(4).assign(partition=np.array([1, 2, 3, 4], dtype=np.uint8), active=np.array([0, 1, 1, 0]))
    with straightforward(monkeypatch):
        want = R.validate_scores(as_objects(f2))
    assert_same(R.validate_scores(f2), want)
    f3 = good(4).assign(partition=[1.5, 1e19, -2.0**63, np.nan])  # beyond int64: int() as the plain path
    with straightforward(monkeypatch):
        want = R.validate_scores(as_objects(f3))
    got = R.validate_scores(f3)
    assert_same(got, want)
    assert got.partition == [1, 10**19, -(2**63), None]


def test_a_batch_changed_after_validation_is_not_misread() -> None:
    """``users_np`` is a cache of ``user_id``: ``latest`` rebuilds it when the lengths differ."""
    batch = R.validate_scores(good(3))
    assert batch.users_np is not None
    batch.user_id.append("a")
    batch.risk = np.append(batch.risk, 0.5)
    batch.features_time = np.append(batch.features_time, batch.features_time[:1])
    for name in ("model_version", "reasons", "plan", "monthly_revenue", "partition", "active"):
        getattr(batch, name).append(getattr(batch, name)[0])
    assert R.latest(batch).user_id == ["a", "u0", "u1", "u2"]


def test_iso_text_is_numpys_text() -> None:
    rng = np.random.default_rng(9)
    lo = int(np.datetime64("0001-01-01", "us").view("int64"))
    hi = int(np.datetime64("9999-12-31T23:59:59.999999", "us").view("int64"))
    for trial in range(60):
        n = int(rng.integers(64, 2000))
        if trial % 3 == 0:
            t = rng.integers(lo, hi + 1, n)
        elif trial % 3 == 1:
            t = 1_767_225_600_000_000 + rng.integers(-3 * 86_400_000_000, 3 * 86_400_000_000, n)
        else:
            t = rng.choice(np.array([lo, hi, 0, -1, 1, lo + 1, hi - 1]), n)
        us = t.view("datetime64[us]")
        for zone in (False, True):
            want = np.datetime_as_string(us, unit="us", timezone="UTC" if zone else "naive").tolist()
            got = R.iso_text(us, zone)
            assert got == want and {type(s) for s in got} == {str}
    assert R.iso_text(np.zeros(63, "datetime64[us]")) is None
    assert R.iso_text(np.full(100, np.datetime64("NaT"), "datetime64[us]")) is None
    assert R.iso_text(np.full(100, np.datetime64("10000-01-01"), "datetime64[us]")) is None


def test_times_in_a_batch_convert_like_datetimes() -> None:
    rows = [{"user_id": f"u{i}", "risk": 0.5, "model_version": "1",
             "features_time": T0 + timedelta(microseconds=i * 999_983)} for i in range(100)]  # fmt: skip
    batch = R.score_batch(rows)
    text = R.TimeCodec("sqlite").iso(batch.features_time)
    assert text == [(T0 + timedelta(microseconds=int(u[1:]) * 999_983)).replace(tzinfo=None)
                    .isoformat(timespec="microseconds") for u in batch.user_id]  # fmt: skip
    assert not any(math.isnan(r) for r in batch.risk)


def test_score_columns_must_be_whole_and_even() -> None:
    cols = as_columns(good(3))
    short = R.ScoreColumns(cols, plan=["basic"])
    with pytest.raises(InvalidRowError, match=r"\['plan'\] are not as long as user_id \(3 rows\)"):
        R.validate_scores(short)
    with pytest.raises(InvalidRowError, match=r"lack \['risk'\]"):
        R.validate_scores(R.ScoreColumns({k: v for k, v in cols.items() if k != "risk"}))
    with pytest.raises(InvalidRowError, match="risk must be numbers"):
        R.validate_scores(R.ScoreColumns(cols, risk=["x", 0.1, 0.2]))
    assert len(R.validate_scores(R.ScoreColumns(cols))) == 3


def test_slice_is_take_of_a_range() -> None:
    batch = R.validate_scores(good(7))
    for lo, hi in ((0, 7), (0, 100), (2, 5), (6, 7), (3, 3)):
        assert_same(batch.slice(lo, hi), batch.take(list(range(lo, min(hi, 7)))))


def test_take_of_columns_with_one_value_keeps_every_value() -> None:
    """A column of one value is repeated, not gathered: the same values and types as an
    element-wise gather, signed zeros kept."""
    cols = R.validate_scores([
        {"user_id": f"u{i}", "risk": 0.5, "model_version": "7", "features_time": T0, "plan": "basic",
         "monthly_revenue": (0.0, -0.0)[i % 2], "partition": 3, "active": True}
        for i in range(9)
    ])  # fmt: skip
    order = [8, 0, 5, 3, 1, 7, 2, 6, 4]
    got = cols.take(order)
    for name in FIELDS:
        want = [getattr(cols, name)[i] for i in order]
        assert getattr(got, name) == want and [type(v) for v in getattr(got, name)] == [type(v) for v in want]
    signs = [math.copysign(1.0, v) for v in got.monthly_revenue]
    assert signs == [math.copysign(1.0, (0.0, -0.0)[i % 2]) for i in order]  # 0.0 == -0.0: not one value


def _floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ordinary values of every magnitude, plus the hard ones for rounding to 4 places:
    ties of the 5th decimal (not exact in binary), signed zeros, huge, tiny, integers."""
    mag = rng.normal(size=n) * 10.0 ** rng.integers(-12, 17, n)
    ties = (rng.integers(-10**7, 10**7, n) + 0.5) / 1e4
    decimals = rng.integers(-10**6, 10**6, n) / 10.0 ** rng.integers(0, 9, n)
    special = np.array([0.0, -0.0, 5e-5, -5e-5, 1.5e-4, 1.00005, 2.5e-5, 4.5e11 + 0.3, 1e300, -1e-300,
                        0.5, 123456.78905, 2.0**40 / 1e4, -(2.0**40) / 1e4 - 0.00005, 1e8 + 0.00005])  # fmt: skip
    return np.concatenate([mag, ties, decimals, special])


def test_round4_is_pythons_round_bit_for_bit() -> None:
    for seed in range(3):
        a = _floats(np.random.default_rng(seed), 50_000)
        got = R.round4(a.reshape(-1, 1)).ravel()  # any shape
        want = np.array([round(float(v), 4) for v in a])
        assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))
    assert R.round4(np.zeros((0, 3))).shape == (0, 3)


def test_reasons_text_is_the_encoders_text_of_the_dicts() -> None:
    """The stream's deferred reasons are built straight to text; the store takes them as
    given (ReasonsJSON), so they must be exactly what it would write for the dicts."""
    rng = np.random.default_rng(4)
    names = ["sessions_7d", "plan_price", 'we"ird\\name', "ünïcode", "tab\there", "a/b"]
    n = 3_000
    idx = rng.integers(0, len(names), (n, 3))
    values = rng.permutation(_floats(rng, n))[: 3 * n].reshape(n, 3)
    contributions = rng.permutation(_floats(rng, n))[: 3 * n].reshape(n, 3)
    got = R.reasons_text(names, idx, values, contributions)
    want = [R._json_text([{"feature": names[j], "value": round(v, 4), "contribution": round(c, 4)}
                          for j, v, c in zip(js, vs, cs, strict=True)])
            for js, vs, cs in zip(idx.tolist(), values.tolist(), contributions.tolist(), strict=True)]  # fmt: skip
    assert got == want and all(type(t) is R.ReasonsJSON for t in got)
    users = [f"u{i}" for i in range(n)]
    stored = R._reasons([*got, None], [*users, "none"])  # taken as given, as plain str
    assert stored == [*want, None] and all(type(t) is str for t in stored[:-1])
