"""Columnar history segments (schema 8) read exactly what the keyed table (schema 4-7) did.

The reference is the previous implementation itself: the version-7 ``score_history``
table (``schema.score_history``) in a private SQLite database, written with the upsert
statement version 7 ran for every write (its points computed as ``Store`` computes
them), read with version 7's query. A realistic write sequence -- several days, many
flushes, users scored several times per flush, stale rows, equal-time re-scores by a new
model version, replayed flushes (a crash), appends of history only -- must read back
identically through ``Store.score_history`` (everything, one user, a few users,
``since``), before and after ``compact_history``, and after ``prune``.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text

from pipeline.store import HistoryPolicy, Store
from pipeline.store import schema as s
from pipeline.store.rows import TimeCodec, latest, validate_scores
from pipeline.store.segments import decode, encode, user_array
from tests.store.helpers import T0, score

V7_UPSERT = (
    "INSERT INTO score_history AS t (user_id, bucket, time, risk, model_version) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, user_id) DO UPDATE SET time = excluded.time, "
    "risk = excluded.risk, model_version = excluded.model_version "
    "WHERE excluded.time > t.time OR (excluded.time = t.time AND "
    "(excluded.risk <> t.risk OR excluded.model_version <> t.model_version))"
)


class KeyedV7:
    """Version 7's history: the keyed table, its upsert, its reader."""

    def __init__(self) -> None:
        self.engine = create_engine("sqlite://")
        s.score_history.create(self.engine)
        self.codec = TimeCodec("sqlite")

    def write(self, rows: list[dict], history: HistoryPolicy) -> None:
        every = validate_scores(rows)
        p = latest(every, history.bucket_us(every.features_time))
        params = list(zip(p.user_id, self.codec.iso(history.bucket_us(p.features_time)),
                          self.codec.iso(p.features_time), p.risk.tolist(), p.model_version,
                          strict=True))  # fmt: skip
        with self.engine.begin() as conn:
            conn.exec_driver_sql(V7_UPSERT, params)

    def read(self, users: list[str] | None = None, since=None) -> pd.DataFrame:
        q = "SELECT user_id, time, risk, model_version FROM score_history"
        where, args = [], {}
        if users is not None:
            where.append("user_id IN (" + ", ".join(f":u{i}" for i in range(len(users))) + ")")
            args.update({f"u{i}": u for i, u in enumerate(users)})
        if since is not None:
            where.append("time >= :since")
            args["since"] = self.codec.one(since)
        if where:
            q += " WHERE " + " AND ".join(where)
        with self.engine.connect() as conn:
            res = conn.execute(text(q + " ORDER BY time, user_id"), args)
            df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
        df["time"] = self.codec.decode(df["time"])
        return df

    def prune(self, before) -> int:
        with self.engine.begin() as conn:
            return conn.execute(text("DELETE FROM score_history WHERE time < :t"),
                                {"t": self.codec.one(before)}).rowcount  # fmt: skip


def workload(seed: int = 3) -> list[tuple[str, list[dict]]]:
    """(kind, rows) writes: 4 days of flushes every ~40 min over 300 users, some users
    several times per flush, stale rows, same-time re-scores by model "2", replayed
    flushes and history-only appends."""
    rng = np.random.default_rng(seed)
    users = [f"user-{i:04d}" for i in range(300)] + ["ünï-1", "用户-2"]  # non-ASCII ids too
    writes: list[tuple[str, list[dict]]] = []
    last: dict[str, float] = {}
    for step in range(4 * 24 * 60 // 40):
        now = step * 40.0
        picked = rng.choice(len(users), 60, replace=False)
        rows = []
        for i in picked:
            u = users[i]
            m = now + float(rng.integers(0, 40))
            rows.append(score(u, float(rng.integers(0, 1000)) / 1000, m, "1"))
            last[u] = m
            if rng.random() < 0.2:  # scored again later in the same flush
                rows.append(score(u, float(rng.random()), m + 1, "1"))
                last[u] = m + 1
        for u in rng.choice(users, 5).tolist():  # stale: older than the stored score
            if u in last:
                rows.append(score(u, float(rng.random()), last[u] - float(rng.integers(1, 300)), "1"))
        for u in rng.choice(list(last), 3).tolist():  # same time, another model's risk
            rows.append(score(u, float(rng.random()), last[u], "2"))
        writes.append(("scores", rows))
        if rng.random() < 0.15 and len(writes) > 2:  # a crash: replay the previous flushes
            writes.extend(writes[-3:-1])
        if rng.random() < 0.1:
            writes.append(("history", rows[: len(rows) // 2]))
    return writes


def _segment_counts(store: Store) -> tuple[int, int]:
    """(flush segments, compaction runs) in the store."""
    c = s.score_history_segments.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(c.run)).scalars().all()
    return sum(r is None for r in rows), len({r for r in rows if r is not None})


@pytest.mark.parametrize("interval", [86_400.0, 3_600.0])
@pytest.mark.parametrize("auto", [False, True], ids=["no-auto-compaction", "writers-compact"])
def test_segments_read_what_the_keyed_table_kept(store: Store, interval: float, auto: bool):
    history = HistoryPolicy(interval)
    ref = KeyedV7()
    writes = workload()
    # writers-compact: the writers' own policy, at a small scale (every write checks; 4
    # flush segments make a run, 3 runs are merged into one)
    store.history_compact_after, store.history_max_runs = (4, 3) if auto else (0, 3)
    most = [0, 0]
    for kind, rows in writes:
        if kind == "scores":
            store.upsert_scores(rows, history=history)
        else:
            store.append_score_history(rows, history=history)
        ref.write(rows, history)
        most = [max(a, b) for a, b in zip(most, _segment_counts(store), strict=True)]
    if auto:  # bounded however many writes: what a one-user read decodes stays small
        assert most == [3, 3], most
    else:
        assert most == [len(writes), 0]
    some = ["user-0007", "user-0123", "ünï-1", "用户-2", "nobody"]
    since = T0 + timedelta(days=2, minutes=13)

    def check() -> None:
        want = ref.read()
        assert len(want) > 500
        pd.testing.assert_frame_equal(store.score_history(), want)
        pd.testing.assert_frame_equal(store.score_history(["user-0042"]), ref.read(["user-0042"]))
        pd.testing.assert_frame_equal(store.score_history(some), ref.read(some))
        pd.testing.assert_frame_equal(store.score_history(since=since), ref.read(since=since))
        pd.testing.assert_frame_equal(store.score_history(some, since=since), ref.read(some, since))

    check()
    out = store.compact_history(segment_points=700)
    assert out["points_after"] == len(ref.read()) and _segment_counts(store) == (0, 1)
    if not auto:
        assert out["segments"] == len(writes)
    assert out["points"] > out["points_after"] and out["segments_after"] == -(-out["points_after"] // 700)
    check()
    # writes after a compaction win ties over the compacted points, as later writes did
    for _, rows in writes[-6:]:
        store.upsert_scores(rows, history=history)
        ref.write(rows, history)
    check()
    cut = T0 + timedelta(days=1, hours=5, minutes=7)
    assert store.prune(cut)["score_history"] == ref.prune(cut)
    check()
    assert store.score_history(["nobody"]).empty


def test_payload_round_trips_and_rejects_unknown_formats():
    users = user_array(["b", "a", "ü"])
    assert users.dtype.kind == "U"  # not all ASCII
    p = decode(encode(users, np.array([1, 2, 3]), np.array([4, 5, 6]), np.array([0.1, 0.2, 0.3]),
                      ["1", "2", "1"]))  # fmt: skip
    assert p.users.tolist() == ["b", "a", "ü"] and p.times.tolist() == [4, 5, 6]
    assert p.risks.tolist() == [0.1, 0.2, 0.3] and p.versions.tolist() == ["1", "2", "1"]
    assert user_array(["a", "bc"]).dtype == np.dtype("S2")
    from pipeline.errors import StoreError

    with pytest.raises(StoreError, match="unknown format"):
        decode(b"XXXX" + bytes(8))
    good = encode(user_array(["a", "b"]), np.array([1, 2]), np.array([3, 4]), np.array([0.5, 0.6]), ["1", "2"])
    for bad in (good[:-1], good + b"x", good[:6], good[:8] + b"[" + good[9:]):  # torn, padded, header
        with pytest.raises(StoreError, match="corrupt"):
            decode(bad)
    codes = bytearray(good)
    codes[-2:] = (7).to_bytes(2, "little")  # a version code past the header's versions
    with pytest.raises(StoreError, match="model version code 7"):
        decode(bytes(codes))


def test_user_ids_with_nul_are_rejected_clearly(store: Store):
    from pipeline.errors import InvalidRowError

    with pytest.raises(InvalidRowError, match="without NUL"):
        store.upsert_scores([score("a\x00b", 0.5)])


def test_an_unreadable_segment_is_skipped_said_and_kept(store: Store, caplog):
    """A damaged segment (torn page, bad restore) loses its own points only: reads return
    the rest and name it, compaction and prune keep it instead of deleting it unread."""
    for day in range(4):
        store.upsert_scores([score(f"u{day}", 0.1 * (day + 1), 60 * 24 * day), score("all", 0.5, 60 * 24 * day)])
    segs = s.score_history_segments
    with store.engine.begin() as conn:
        seqs = conn.execute(select(segs.c.seq).order_by(segs.c.seq)).scalars().all()
        bad = seqs[1]
        conn.execute(segs.update().where(segs.c.seq == bad).values(payload=b"CHS1\xff\xff\xff\xffjunk"))
    with caplog.at_level("ERROR", logger="pipeline.store"):
        hist = store.score_history()
    assert hist.attrs["unreadable_segments"] == [bad]
    assert f"seq={bad} is unreadable" in caplog.text
    assert sorted(hist.user_id) == ["all", "all", "all", "u0", "u2", "u3"]  # day 1's points only gone
    assert store.score_history(["u0"]).attrs["unreadable_segments"] == [bad]  # a one-user read too

    done = store.compact_history()
    assert done["unreadable"] == 1 and done["points_after"] == 6
    with store.engine.connect() as conn:
        left = conn.execute(select(segs.c.seq, segs.c.run).order_by(segs.c.seq)).all()
    assert (bad, None) in [tuple(r) for r in left]  # the damaged one is still there, unmerged
    pd.testing.assert_frame_equal(store.score_history(), hist, check_like=True)
    store.prune(T0 + timedelta(days=2))  # prune rewrites what it can read and keeps the rest
    after = store.score_history()
    assert sorted(after.user_id) == ["all", "all", "u2", "u3"] and after.attrs["unreadable_segments"] == [bad]
