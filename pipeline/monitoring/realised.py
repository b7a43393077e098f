"""Realised performance: how the published scores ranked and were calibrated, once the
horizon after each scoring day has passed.

For a scoring instant ``t`` (a UTC midnight) and a horizon of ``H`` days:

* **population**: users with an active subscription at ``t`` (latest signup after latest
  cancel, both ``<= t``: the training labels' rule, :mod:`pipeline.labels`) who had a
  published score at ``t``;
* **score**: the risk the stream had published for the user at ``t`` -- the user's newest
  ``score_history`` point with ``time <= t`` (what the dashboard and a campaign saw then);
* **label**: 1 if the user cancelled in ``(t, t + H]`` (:func:`pipeline.labels.forward_labels`);
* per model version that produced those scores (after a promotion, users not rescored
  yet still carry the old version's score): ``n``, ``positives``, base rate (Wilson 95 %
  interval), ROC-AUC, PR-AUC (average precision), lift at the top 10 %, ECE (equal-count
  bins, as training reports it) and mean risk, each with a percentile-bootstrap 95 %
  interval (``n_boot`` resamples, seeded per day: the same inputs give the same rows).

A day is *matured* once ``t + H <=`` the newest event time. Metrics that need both
classes are NaN when a population has no churner (or only churners), and every metric is
NaN below ``min_rows`` users; counts are always recorded.

>>> import pandas as pd
>>> from pipeline.monitoring.lifecycle import Lifecycle
>>> DAY = 86_400_000_000
>>> hist = pd.DataFrame({"user_id": ["a", "b", "c", "d"], "time_us": [DAY // 2] * 4,
...                      "risk": [0.9, 0.2, 0.7, 0.1], "model_version": "3"})
>>> lc = Lifecycle.of([(u, 0) for u in "abcd"], [("a", DAY + 5), ("c", 3 * DAY)])
>>> row = realised_day(hist, lc, DAY, horizon_days=1, n_boot=0, min_rows=1)[0]
>>> row["n"], row["positives"], row["roc_auc"], row["base_rate"]
(4, 1, 1.0, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.evaluation import calibration_table, lift_at
from pipeline.features.timebase import DAY_US
from pipeline.labels import forward_labels
from pipeline.monitoring.lifecycle import Lifecycle

METRICS = ("roc_auc", "pr_auc", "lift_10", "ece")
ECE_BINS = 10
MIN_ROWS = 50  # fewer scored users in a day/version: counts only


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Row-weighted mean |observed rate - mean predicted| over equal-count score bins
    (the bins of :func:`pipeline.evaluation.calibration_table`)."""
    t = calibration_table(y, p, bins)
    return float((t["n"] * t["gap"].abs()).sum() / t["n"].sum())


def point_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The realised metrics of one population (NaN where they are undefined)."""
    both = 0 < y.sum() < len(y)
    nan = float("nan")
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else nan,
        "pr_auc": float(average_precision_score(y, p)) if both else nan,
        "lift_10": float(lift_at(y, p, 0.10)) if y.sum() else nan,
        "ece": ece(y, p) if len(y) else nan,
    }


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion k/n (n > 0)."""
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def bootstrap(y: np.ndarray, p: np.ndarray, n_boot: int, seed: int) -> dict[str, tuple[float, float]]:
    """Percentile 95 % intervals of :func:`point_metrics` over ``n_boot`` row resamples."""
    if n_boot <= 0:
        return {m: (float("nan"), float("nan")) for m in METRICS}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        for m, v in point_metrics(y[i], p[i]).items():
            if not math.isnan(v):
                draws[m].append(v)
    out = {}
    for m, vals in draws.items():
        out[m] = (float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))) if vals else (float("nan"),) * 2
    return out


def active_at(lifecycle: Lifecycle, t_us: int) -> np.ndarray:
    """User ids subscribed at ``t_us``: latest signup <= t after latest cancel <= t."""
    s = lifecycle.signups[lifecycle.signups["t"] <= t_us].groupby("user_id", sort=False)["t"].max()
    c = lifecycle.cancels[lifecycle.cancels["t"] <= t_us].groupby("user_id", sort=False)["t"].max()
    last_cancel = c.reindex(s.index).fillna(-1).astype(np.int64)
    return s.index[s.to_numpy() > last_cancel.to_numpy()].to_numpy(dtype=object)


def published_at(history: pd.DataFrame, t_us: int) -> pd.DataFrame:
    """Each user's newest score point with ``time_us <= t_us`` (user_id, risk, model_version)."""
    h = history[history["time_us"] <= t_us]
    if h.empty:
        return h[["user_id", "risk", "model_version"]]
    h = h.sort_values(["time_us"], kind="stable")
    return h.drop_duplicates("user_id", keep="last")[["user_id", "risk", "model_version"]]


def realised_day(history: pd.DataFrame, lifecycle: Lifecycle, day_us: int, horizon_days: int, *,
                 n_boot: int = 200, seed: int = 0, min_rows: int = MIN_ROWS) -> list[dict[str, Any]]:
    """One row per model version for the scoring instant ``day_us``.

    ``history``: ``user_id``, ``time_us`` (int64 epoch microseconds), ``risk``,
    ``model_version`` (as :meth:`pipeline.store.Store.score_history` returns, times
    converted with :func:`history_frame`)."""
    pub = published_at(history, day_us)
    pub = pub[pub["user_id"].isin(set(active_at(lifecycle, day_us).tolist()))]
    if pub.empty:
        return []
    users = pub["user_id"].tolist()
    y_all = forward_labels(users, np.full(len(users), day_us, np.int64), lifecycle.cancels["user_id"].tolist(),
                           lifecycle.cancels["t"].to_numpy(np.int64), horizon_days).astype(np.float64)
    rows = []
    versions = pub["model_version"].astype(str).to_numpy()
    for version in sorted(set(versions.tolist())):
        mask = versions == version
        y, p = y_all[mask], pub["risk"].to_numpy(np.float64)[mask]
        n, k = int(len(y)), int(y.sum())
        row: dict[str, Any] = {"day_us": int(day_us), "model_version": version, "horizon_days": int(horizon_days),
                               "n": n, "positives": k, "base_rate": k / n, "mean_risk": float(p.mean())}
        row["base_rate_low"], row["base_rate_high"] = wilson(k, n)
        enough = n >= min_rows
        point = point_metrics(y, p) if enough else dict.fromkeys(METRICS, float("nan"))
        ci = bootstrap(y, p, n_boot, seed + int(day_us // DAY_US)) if enough else bootstrap(y, p, 0, 0)
        for m in METRICS:
            row[m] = point[m]
            row[f"{m}_low"], row[f"{m}_high"] = ci[m]
        rows.append(row)
    return rows


def matured_days(first_us: int, end_us: int, horizon_days: int) -> list[int]:
    """UTC midnights ``t`` with ``first_us <= t`` and ``t + horizon <= end_us``."""
    first = -(-int(first_us) // DAY_US) * DAY_US
    last = (int(end_us) - horizon_days * DAY_US) // DAY_US * DAY_US
    return list(range(first, last + 1, DAY_US)) if last >= first else []


def history_frame(history: pd.DataFrame) -> pd.DataFrame:
    """``Store.score_history()`` (``time`` as UTC datetimes) -> ``time_us`` int64 column."""
    out = history[["user_id", "risk", "model_version"]].copy()
    t = pd.DatetimeIndex(history["time"])
    out["time_us"] = (t.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)
                      if len(t) else np.zeros(0, np.int64))
    out["model_version"] = out["model_version"].astype(str)
    return out


def realised_performance(history: pd.DataFrame, lifecycle: Lifecycle, days_us: Iterable[int], horizon_days: int,
                         *, n_boot: int = 200, seed: int = 0, min_rows: int = MIN_ROWS) -> pd.DataFrame:
    """:func:`realised_day` for each of ``days_us``, as one frame (``day`` as UTC datetimes)."""
    rows = [r for d in days_us for r in realised_day(history, lifecycle, d, horizon_days, n_boot=n_boot,
                                                    seed=seed, min_rows=min_rows)]
    return rows_frame(rows)


COLUMNS: Sequence[str] = ("day", "model_version", "horizon_days", "n", "positives",
                          *(f"{m}{s}" for m in ("base_rate", *METRICS) for s in ("", "_low", "_high")),
                          "mean_risk")  # fmt: skip


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    df.insert(0, "day", pd.to_datetime(df.pop("day_us"), unit="us", utc=True))
    return df[list(COLUMNS)]
