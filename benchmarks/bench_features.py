"""Feature engine throughput, beside its decode floor and a naive per-event pandas baseline;
plus building the labelled snapshots of the default simulation (wall time, peak memory).

Figures (medians of 3 runs, each printed with its spread min-max; ``quick``: small sizes,
1 run). The snapshots' simulation is the benchmarks' shared one (``benchmarks/cache.py``).

* ``features_eps`` - raw event bytes -> ``FeatureEngine.process`` (strict decode, columns,
  state update), events/s on one core: 1,000,000 events over 100,000 users routed to the
  default 4 partitions (a user's state lives with its partition), batches of 10,000.
* ``features_single_partition_eps`` - the same with all 100,000 users in one state. It is
  slower mainly because the user-id -> slot dict is 4x larger, and on this machine kind a
  lookup in a 100k-key dict is memory-latency bound (~0.5-0.8 us vs ~0.1 us at 1k keys).
* ``features_update_only_eps`` - the state update from already-decoded columns.
* ``features_decode_floor_eps`` - strict decode alone (the contract's msgspec decoder).
* ``features_naive_eps`` - per-event pandas (append the event to the user's frame,
  recompute the features with pandas), on the first events of the same stream.
* ``snapshots_seconds`` / ``snapshots_peak_rss_mb`` - ``build_snapshots`` + Parquet write
  for 20,000 users x 180 days (4-partition file log), in a child process (VmHWM).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.memory import peak_rss_mb
from pipeline.events import (
    PLANS,
    Cancel,
    Event,
    Payment,
    PaymentFailed,
    PlanChange,
    Session,
    Signup,
    SupportTicket,
    encode,
)
from pipeline.features.columns import decode_columns, gc_paused
from pipeline.features.engine import FeatureEngine
from pipeline.features.state import FeatureState
from pipeline.log import partition_for_many

BATCH = 10_000
PARTITIONS = 4  # the default topic (Settings.partitions)
# signup, session, payment, payment_failed, plan_change, support_ticket, cancel
TYPE_MIX = np.array([0.010, 0.955, 0.022, 0.004, 0.002, 0.006, 0.001])


def make_stream(n_events: int, n_users: int, seed: int = 1) -> tuple[list[bytes], list[str]]:
    """Contract-valid JSON lines (``pipeline.events.encode``) in time order over 14 days,
    with the simulator's type mix (~96 % sessions)."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    offsets = np.sort(rng.integers(0, 14 * 86_400, n_events)).tolist()
    kinds = rng.choice(len(TYPE_MIX), size=n_events, p=TYPE_MIX / TYPE_MIX.sum()).tolist()
    users = rng.integers(0, n_users, n_events).tolist()
    minutes = np.round(rng.lognormal(np.log(36), 0.6, n_events), 1).tolist()
    plans = rng.integers(0, 3, n_events).tolist()
    lines = []
    for i, (off, kind, u, m, p) in enumerate(zip(offsets, kinds, users, minutes, plans, strict=True)):
        common = {"event_id": f"b-{i}", "user_id": f"u{u:07d}", "ts": start + timedelta(seconds=off), "schema_version": 1}
        plan = PLANS[p]
        if kind == 1:
            e: Event = Session(**common, watch_minutes=m, device="tv")
        elif kind == 0:
            e = Signup(**common, plan=plan)
        elif kind == 2:
            e = Payment(**common, amount=13.99, plan=plan)
        elif kind == 3:
            e = PaymentFailed(**common, amount=13.99, reason="card_expired")
        elif kind == 4:
            e = PlanChange(**common, from_plan=plan, to_plan=PLANS[(p + 1) % 3])
        elif kind == 5:
            e = SupportTicket(**common, category="billing")
        else:
            e = Cancel(**common, reason="voluntary")
        lines.append(encode(e))
    return lines, [f"u{u:07d}" for u in users]


def _batches(lines: list[bytes]) -> list[list[bytes]]:
    return [lines[i : i + BATCH] for i in range(0, len(lines), BATCH)]


def decode_floor(batches: list[list[bytes]]) -> float:
    from pipeline.features.columns import _decoder

    n = sum(map(len, batches))
    t = time.perf_counter()
    for b in batches:
        with gc_paused():
            [_decoder.decode(v) for v in b]
    return n / (time.perf_counter() - t)


def engine_rate(lines: list[bytes], parts: np.ndarray, n_partitions: int) -> float:
    """Raw bytes -> ``FeatureEngine.process`` (strict decode, columns, state update), events/s.

    Records are routed to partitions up front (the log does that when producing) and each
    partition is consumed in batches of ``BATCH``, one partition after the other."""
    per = [[lines[i] for i in np.flatnonzero(parts == p).tolist()] for p in range(n_partitions)]
    batches = [(p, vals[i : i + BATCH]) for p, vals in enumerate(per) for i in range(0, len(vals), BATCH)]
    engine = FeatureEngine(n_partitions)
    t = time.perf_counter()
    for p, b in batches:
        engine.process(p, b)
    return len(lines) / (time.perf_counter() - t)


def update_only_rate(batches: list[list[bytes]]) -> float:
    """Already-decoded columns -> one state, events/s (the update without the decode)."""
    cols = [decode_columns(b).columns for b in batches]
    st = FeatureState()
    t = time.perf_counter()
    for c in cols:
        st.update(c)
    return sum(map(len, cols)) / (time.perf_counter() - t)


class NaivePandas:
    """The usual demo: each user's events in a DataFrame, features recomputed per event."""

    def __init__(self) -> None:
        self.frames: dict[str, pd.DataFrame] = {}
        self.features: dict[str, dict[str, float]] = {}

    def update(self, e: Event) -> None:
        row = pd.DataFrame([{
            "ts": pd.Timestamp(e.ts), "type": e.type,
            "watch": getattr(e, "watch_minutes", 0.0), "amount": getattr(e, "amount", np.nan),
            "down": isinstance(e, PlanChange) and e.to_plan < e.from_plan,
        }])
        old = self.frames.get(e.user_id)
        df = row if old is None else pd.concat([old, row], ignore_index=True)
        self.frames[e.user_id] = df
        now = df.ts.max()
        f: dict[str, float] = {}
        s = df[df.type == "session"]
        for w in (7, 14, 30):
            win = s[s.ts > now - pd.Timedelta(days=w)]
            f[f"sessions_{w}d"] = len(win)
            f[f"watch_per_day_{w}d"] = win.watch.sum() / w
        daily = s.set_index("ts").watch.resample("1D").sum().reindex(
            pd.date_range(now.normalize() - pd.Timedelta(days=29), now.normalize(), freq="D"), fill_value=0.0)
        f["watch_per_session_30d"] = f["watch_per_day_30d"] * 30 / max(f["sessions_30d"], 1)
        f["active_days_30d"] = float((daily > 0).sum())
        f["active_days_7d"] = float((daily.iloc[-7:] > 0).sum())
        f["watch_trend_7v7"] = float(np.log1p(daily.iloc[-7:].sum()) - np.log1p(daily.iloc[-14:-7].sum()))
        f["watch_slope_14d"] = float(np.polyfit(np.arange(14), daily.iloc[-14:].to_numpy(), 1)[0])
        f["watch_lag_1d"], f["watch_lag_2d"] = float(daily.iloc[-2]), float(daily.iloc[-3])
        f["days_since_last_session"] = (now - s.ts.max()).total_seconds() / 86_400 if len(s) else 0.0
        last30 = df[df.ts > now - pd.Timedelta(days=30)]
        f["payments_failed_30d"] = float((last30.type == "payment_failed").sum())
        charges = df[df.type.isin(["payment", "payment_failed"])]
        f["last_payment_failed"] = float(len(charges) > 0 and charges.type.iloc[-1] == "payment_failed")
        f["tickets_30d"] = float((last30.type == "support_ticket").sum())
        f["downgrades_30d"] = float(last30.down.sum())
        f["plan_price"] = float(charges.amount.iloc[-1]) if len(charges) else 0.0
        self.features[e.user_id] = f


def naive_rate(lines: list[bytes], n: int) -> float:
    from pipeline.events import decode

    events = [decode(v) for v in lines[:n]]
    naive = NaivePandas()
    t = time.perf_counter()
    for e in events:
        naive.update(e)
    return n / (time.perf_counter() - t)


# -- snapshots in a child process (its own peak RSS) ----------------------------------------
def _child(log_root: str) -> None:
    from pipeline.labels import build_snapshots, write_snapshots
    from pipeline.log import open_log

    log = open_log(Path(log_root) / "log", "events")
    t = time.perf_counter()
    snap = build_snapshots(log)
    write_snapshots(snap, Path(log_root) / "snapshots.parquet")
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "rss_mb": peak_rss_mb(), "rows": len(snap.table), "records": snap.records}))




def snapshots(users: int, days: int, reps: int) -> tuple[float, float, int, int]:
    from benchmarks import cache

    with tempfile.TemporaryDirectory() as tmp:
        # the default simulation (seed 42), shared with bench_train and bench_stream
        sim = cache.simulated(users, days, seed=42, partitions=4, tmp_root=Path(tmp) / "cache")
        cache.linked_copy(sim / "log", Path(tmp) / "log")
        runs = []
        env = os.environ | {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        for _ in range(reps):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_features", "--snapshots-child", tmp],
                check=True, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent,
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    each = ", ".join(f"{r['seconds']:.1f}" for r in runs)
    print(f"  snapshot builds: {each} s", flush=True)
    return (
        statistics.median(r["seconds"] for r in runs), max(r["rss_mb"] for r in runs),
        runs[0]["rows"], runs[0]["records"],
    )


def run(quick: bool = False) -> dict[str, float]:
    n_events, n_users, reps = (100_000, 10_000, 1) if quick else (1_000_000, 100_000, 3)
    lines, users = make_stream(n_events, n_users)
    parts = partition_for_many([u.encode() for u in users], PARTITIONS)
    batches = _batches(lines)
    FeatureEngine(1).process(0, lines[:100])  # load the compiled kernels once (numba cache)
    runs = {
        "floor": [decode_floor(batches) for _ in range(reps)],
        "full": [engine_rate(lines, parts, PARTITIONS) for _ in range(reps)],
        "single": [engine_rate(lines, np.zeros(len(lines), np.int64), 1) for _ in range(reps)],
        "update": [update_only_rate(batches) for _ in range(reps)],
    }
    naive_n = 150 if quick else 600
    runs["naive"] = [naive_rate(lines, naive_n) for _ in range(reps)]
    med = {k: statistics.median(v) for k, v in runs.items()}
    sp = {k: f"  [{min(v):,.0f} - {max(v):,.0f}]" if len(v) > 1 else "" for k, v in runs.items()}
    floor, full, single, update_only, naive = (med[k] for k in ("floor", "full", "single", "update", "naive"))
    print(f"{n_events:,} events over {n_users:,} users, batches of {BATCH:,}, one core, median of {reps} [spread]")
    print(f"  strict decode floor            {floor:12,.0f} events/s{sp['floor']}")
    print(f"  feature engine, {PARTITIONS} partitions    {full:12,.0f} events/s  (bytes -> state; target >= 300,000: "
          f"{full / 300_000:.2f}x; {full / floor:.0%} of the decode floor){sp['full']}")
    print(f"  feature engine, 1 partition    {single:12,.0f} events/s  (all {n_users:,} users in one state){sp['single']}")
    print(f"  state update only              {update_only:12,.0f} events/s  (from decoded columns, 1 partition)"
          f"{sp['update']}")
    print(f"  naive per-event pandas         {naive:12,.1f} events/s  (first {naive_n} events: short histories, its "
          f"best case){sp['naive']}")
    print(f"  speed-up over naive            {full / naive:12,.0f}x  (target >= 100x)")

    s_users, s_days, s_reps = (2_000, 90, 1) if quick else (20_000, 180, 3)
    secs, rss, rows, records = snapshots(s_users, s_days, s_reps)
    print(f"labelled snapshots, {s_users:,} users x {s_days} days ({records:,} records -> {rows:,} rows), median of {s_reps}")
    print(f"  wall time                      {secs:12.1f} s  ({records / secs:,.0f} records/s, file log, 4 partitions)")
    print(f"  peak RSS (child process)       {rss:12.0f} MB")
    return {
        "features_eps": full, "features_single_partition_eps": single, "features_update_only_eps": update_only,
        "features_decode_floor_eps": floor, "features_naive_eps": naive,
        "snapshots_seconds": secs, "snapshots_peak_rss_mb": rss,
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--snapshots-child":
        _child(sys.argv[2])
    else:
        run(quick="--quick" in sys.argv)
