"""Test helper shipped with the library: a small labelled-snapshot frame of the real shape.

Columns: ``user_id``, ``cutoff`` (UTC), one column per feature, ``label``, plus the true
probability ``p_true`` (what an oracle would know). Risk rises with failed payments,
tickets, recency and a falling engagement trend, and with the plan price, so behavioural
tests have something to check.

>>> df, feats = synthetic_snapshots(users=100, cutoffs=2, seed=1)
>>> len(df), "label" in df, feats[0]
(200, True, 'days_since_last_session')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

FEATURES = (
    "days_since_last_session", "sessions_7d", "sessions_30d", "watch_per_day_30d", "sessions_trend_7v7",
    "watch_trend_7v7", "payments_failed_30d", "last_payment_failed", "tickets_7d", "tickets_30d",
    "tenure_days", "plan_price",
)  # a subset of the real feature registry's names, so models/*.yaml fit this frame too


def synthetic_snapshots(users: int = 2_000, cutoffs: int = 6, seed: int = 0, every_days: int = 7,
                        start: datetime = datetime(2026, 2, 1, tzinfo=UTC)) -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    frames = []
    for c in range(cutoffs):
        n = users
        eng = rng.normal(0, 0.6, n)
        trend = rng.normal(0, 0.3, n)
        s30 = rng.poisson(np.exp(1.5 + eng) * 4)
        fails = rng.poisson(0.15, n).astype(float)
        t30 = rng.poisson(0.2, n).astype(float)
        f = {
            "days_since_last_session": np.minimum(rng.exponential(np.exp(-eng) * 2), 60).round(),
            "sessions_7d": rng.poisson(np.exp(eng) * 5).astype(float),
            "sessions_30d": s30.astype(float),
            "watch_per_day_30d": s30 * rng.lognormal(3.5, 0.4, n) / 30,
            "sessions_trend_7v7": trend,
            "watch_trend_7v7": trend + rng.normal(0, 0.2, n),
            "payments_failed_30d": fails,
            "last_payment_failed": ((fails > 0) & (rng.random(n) < 0.5)).astype(float),
            "tickets_7d": np.minimum(t30, rng.poisson(0.1, n)).astype(float),
            "tickets_30d": t30,
            "tenure_days": rng.exponential(240, n).round(),
            "plan_price": rng.choice([7.99, 13.99, 19.99], n, p=[0.42, 0.4, 0.18]),
        }
        z = (-2.6 - 0.9 * eng - 1.2 * trend + 0.9 * fails + 0.5 * t30
             + 0.05 * (f["plan_price"] - 13.99) + 0.8 * np.exp(-f["tenure_days"] / 45))
        p = 1 / (1 + np.exp(-z))
        df = pd.DataFrame(f)
        df.insert(0, "cutoff", pd.Timestamp(start + timedelta(days=c * every_days)))
        df.insert(0, "user_id", [f"u{i:07d}" for i in range(n)])
        df["p_true"] = p
        df["label"] = (rng.random(n) < p).astype(np.int8)
        frames.append(df)
    return pd.concat(frames, ignore_index=True), list(FEATURES)


def split_by_cutoff(df: pd.DataFrame, val: int = 1, test: int = 1) -> pd.DataFrame:
    """Add a ``split`` column: the last ``test`` cutoffs test, the ``val`` before them val."""
    cuts = sorted(df["cutoff"].unique())
    part = {c: "train" for c in cuts[: len(cuts) - val - test]}
    part |= {c: "val" for c in cuts[len(cuts) - val - test: len(cuts) - test]}
    part |= {c: "test" for c in cuts[len(cuts) - test:]}
    return df.assign(split=df["cutoff"].map(part))
