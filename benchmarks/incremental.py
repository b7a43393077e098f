"""The fair baseline for ``stream_eps``: what a good engineer writes without our engine.

Per user a dict holding 30 daily buckets (sessions, watch minutes, payments, failed
payments, tickets, downgrades, upgrades) plus plan, signup day and last session,
updated per event in plain Python (stdlib ``json`` decode of each line). Every 1,000
events the touched users' 29 features are computed from their buckets, scored with
one batched ``inplace_predict`` of the same champion, and upserted into SQLite (WAL,
``synchronous=NORMAL``) with one ``executemany`` + commit. No reasons, no history,
no checkpoints, no dead letters: it does less than the real stream, on purpose
generous to the baseline.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from pipeline.events import PLANS
from pipeline.features.registry import FEATURE_NAMES

DAYS = 30
BATCH = 1_000
_PRICE = {"basic": 8.99, "standard": 13.99, "premium": 19.99}
_S, _W, _P, _F, _T, _D, _U = range(7)  # bucket fields


class UserState:
    __slots__ = ("buckets", "first_day", "last_day", "last_session", "last_charge_failed", "plan", "signup")

    def __init__(self, day: int) -> None:
        self.buckets: dict[int, list[float]] = {}
        self.first_day = self.last_day = day
        self.last_session: float | None = None
        self.last_charge_failed = 0.0
        self.plan: str | None = None
        self.signup = day

    def update(self, e: dict, ts: float) -> None:
        day = int(ts // 86_400)
        self.last_day = max(self.last_day, day)
        for old in [d for d in self.buckets if d <= day - DAYS]:
            del self.buckets[old]
        b = self.buckets.get(day)
        if b is None:
            b = self.buckets[day] = [0.0] * 7
        kind = e["type"]
        if kind == "session":
            b[_S] += 1
            b[_W] += e.get("watch_minutes", 0.0)
            self.last_session = ts
        elif kind == "payment":
            b[_P] += 1
            self.last_charge_failed = 0.0
            self.plan = e.get("plan", self.plan)
        elif kind == "payment_failed":
            b[_F] += 1
            self.last_charge_failed = 1.0
        elif kind == "support_ticket":
            b[_T] += 1
        elif kind == "plan_change":
            up = PLANS.index(e["to_plan"]) > PLANS.index(e["from_plan"])
            b[_U if up else _D] += 1
            self.plan = e["to_plan"]
        elif kind == "signup":
            self.plan, self.signup = e.get("plan"), day

    def features(self, now: float) -> list[float]:
        today = int(now // 86_400)
        per_day = [self.buckets.get(today - k, (0.0,) * 7) for k in range(DAYS)]  # [0] = today

        def total(field: int, days: int) -> float:
            return sum(d[field] for d in per_day[:days])

        s7, s14, s30 = total(_S, 7), total(_S, 14), total(_S, 30)
        w7, w14, w30 = total(_W, 7), total(_W, 14), total(_W, 30)
        watch = [d[_W] for d in per_day[:14]][::-1]
        mean_x, mean_y = 6.5, sum(watch) / 14
        slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(watch)) / 227.5
        prev7 = sum(d[_S] for d in per_day[7:14])
        prev_w7 = sum(d[_W] for d in per_day[7:14])
        tier = PLANS.index(self.plan) if self.plan in PLANS else -1
        since = (now - self.last_session) / 86_400 if self.last_session is not None else 0.0
        return [
            s7, s14, s30, s7 / 7, s30 / 30, w7 / 7, w14 / 14, w30 / 30, w7 / max(s7, 1), w30 / max(s30, 1),
            float(sum(d[_S] > 0 for d in per_day[:7])), float(sum(d[_S] > 0 for d in per_day)),
            math.log1p(s7) - math.log1p(prev7), math.log1p(w7) - math.log1p(prev_w7), slope,
            per_day[0][_W], per_day[1][_W], per_day[2][_W], since, total(_P, 30), total(_F, 30),
            self.last_charge_failed, total(_T, 7), total(_T, 30), total(_D, 30), total(_U, 30),
            float(today - self.signup), float(tier), _PRICE.get(self.plan or "", 0.0),
        ]  # fmt: skip


def incremental_eps(
    lines: list[bytes], model, db_path: Path, halves: list[float] | None = None
) -> tuple[float, int]:
    """Events per CPU second of this process over ``lines``; and the rows upserted.
    ``halves``: gets the rates of the first and the second half of ``lines`` appended
    (whether the rate is flat in the slice length)."""
    assert len(FEATURE_NAMES) == 29  # the feature order above is the registry's
    cols = [FEATURE_NAMES.index(f) for f in model.features]
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS scores (user_id TEXT PRIMARY KEY, risk REAL, "
               "features_time TEXT) WITHOUT ROWID")  # fmt: skip
    sql = ("INSERT INTO scores VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
           "risk = excluded.risk, features_time = excluded.features_time")  # fmt: skip
    users: dict[str, UserState] = {}
    rows = 0
    t = time.process_time()
    mid, t_mid = (len(lines) // 2 // BATCH) * BATCH, None
    for lo in range(0, len(lines), BATCH):
        if lo == mid:
            t_mid = time.process_time()
        touched: dict[str, None] = {}
        now = 0.0
        for line in lines[lo : lo + BATCH]:
            e = json.loads(line)
            ts = datetime.fromisoformat(e["ts"]).timestamp()
            now = max(now, ts)
            u = e["user_id"]
            st = users.get(u)
            if st is None:
                st = users[u] = UserState(int(ts // 86_400))
            st.update(e, ts)
            touched[u] = None
        ids = list(touched)
        x = np.array([users[u].features(now) for u in ids], dtype=np.float32)[:, cols]
        risk = model.booster.inplace_predict(x).tolist()
        stamp = datetime.fromtimestamp(now).isoformat()
        db.execute("BEGIN")
        db.executemany(sql, [(u, r, stamp) for u, r in zip(ids, risk, strict=True)])
        db.execute("COMMIT")
        rows += len(ids)
    t_end = time.process_time()
    rate = len(lines) / (t_end - t)
    if halves is not None and t_mid is not None and mid:
        halves += [mid / (t_mid - t), (len(lines) - mid) / (t_end - t_mid)]
    db.close()
    return rate, rows
