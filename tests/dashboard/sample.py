"""A small, plausible data set for the dashboard tests, written through the real writers.

Not a model's output: scores are drawn from a skewed Beta (most users low risk, a few
per cent over the 0.5 alert threshold), with SHAP-like reasons for the high-risk ones;
15 minutes of 5-second metric ticks of a 4-partition group that scales 2 -> 3 consumers
when lag builds up, then drains it (partition 3 ends in WARN); a few dead letters; an
MLflow registry with three versions (v1 promoted, then v2 promoted by the gate, v3 the
rejected challenger); twelve drift checks building up to Critical, and one report file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.store import HistorySampling, Store, StreamMetric

PLANS = {"basic": 7.99, "standard": 12.99, "premium": 17.99}
FEATURES = ["failed_payments_30d", "days_since_last_watch", "watch_minutes_7d_vs_28d",
            "support_tickets_30d", "plan_downgrades_90d", "skips_ratio_7d"]  # fmt: skip
USERS = 3_000
PARTITIONS = 4
TICK_S = 5
WINDOW_MIN = 15


def _reasons(rng: np.random.Generator, risk: float) -> list[dict[str, float]] | None:
    if risk < 0.5:
        return None
    picks = rng.choice(len(FEATURES), size=3, replace=False)
    contrib = np.sort(rng.uniform(0.05, 0.6, size=3))[::-1]
    return [{"feature": FEATURES[i], "contribution": round(float(c), 4)}
            for i, c in zip(picks, contrib, strict=True)]  # fmt: skip


def populate_store(store: Store, now: datetime, seed: int = 7) -> dict[str, object]:
    """Write scores (+ history), metrics, decisions and assignments; return key facts."""
    rng = np.random.default_rng(seed)
    users = [f"u{i:05d}" for i in range(USERS)]
    plans = rng.choice(list(PLANS), size=USERS, p=[0.45, 0.4, 0.15])
    base = rng.beta(1.1, 7.0, size=USERS)
    hot = rng.choice(USERS, size=150, replace=False)  # users that drift towards churn
    base[hot] = rng.uniform(0.45, 0.97, size=len(hot))
    sampling = HistorySampling(min_change=0.02, max_interval_s=6 * 3600)
    start = now - timedelta(days=3)
    for step in range(8):  # eight scoring passes, 9 hours of event time apart
        t = start + timedelta(hours=9 * step)
        drift = np.where(np.isin(np.arange(USERS), hot), 0.06 * (step - 7), 0.0)
        risk = np.clip(base + drift + rng.normal(0, 0.01, USERS), 0.0, 1.0)
        rows = pd.DataFrame({
            "user_id": users, "risk": risk, "model_version": "2" if step >= 3 else "1",
            "features_time": pd.Timestamp(t),
            "reasons": [_reasons(rng, r) for r in risk], "plan": plans,
            "monthly_revenue": [PLANS[p] for p in plans],
            "partition": [int(u[1:]) % PARTITIONS for u in users],
        })  # fmt: skip
        store.upsert_scores(rows, history=sampling)

    metrics, decisions = [], []
    ticks = WINDOW_MIN * 60 // TICK_S
    t0 = now - timedelta(seconds=ticks * TICK_S)
    offsets = np.zeros(PARTITIONS, dtype=np.int64)
    ends = np.full(PARTITIONS, 1_000, dtype=np.int64)
    for k in range(ticks):
        t = t0 + timedelta(seconds=k * TICK_S)
        consumers = 2 if k < 60 else 3
        owner = ({0: "w0", 1: "w0", 2: "w1", 3: "w1"} if consumers == 2
                 else {0: "w0", 1: "w0", 2: "w1", 3: "w2"})  # fmt: skip
        produce = 900 if 30 <= k < 90 else 450  # a traffic burst builds lag
        capacity = 600 if consumers == 2 else 1_050
        for p in range(PARTITIONS):
            ends[p] += int(produce * TICK_S / PARTITIONS * rng.uniform(0.9, 1.1))
            slow = p == 3 and k >= ticks - 8  # w2 slows down at the end: its lag grows
            rate = produce * 0.5 if slow else capacity
            done = min(int(rate * TICK_S / PARTITIONS * rng.uniform(0.9, 1.1)),
                       int(ends[p] - offsets[p]))  # fmt: skip
            offsets[p] += done
            lag = int(ends[p] - offsets[p])
            status = "WARN" if (slow and k >= ticks - 4) else "OK"
            dead = int(rng.random() < 0.08)
            p50 = float(rng.uniform(35, 60)) * (1.4 if lag > 3_000 else 1.0)
            metrics.append(StreamMetric(
                time=t, worker=owner[p], partition=p, committed_offset=int(offsets[p]),
                log_end_offset=int(ends[p]), lag=lag, lag_seconds=lag / 110.0, status=status,
                events=done, events_per_s=done / TICK_S, batch_p50_ms=p50,
                batch_p95_ms=p50 * 2.1, batch_p99_ms=p50 * 3.4, dead_letters=dead,
                model_version="2",
            ))  # fmt: skip
        if k % 6 == 0:
            total = int((ends - offsets).sum())
            if k == 60:
                decisions.append({"time": t, "current": 2, "desired": 3, "action": "scale_up",
                                  "reason": f"lag {total:,} > 2 x 10,000 per consumer for 3 ticks",
                                  "recommended": 3, "total_lag": total})  # fmt: skip
            else:
                decisions.append({"time": t, "current": consumers, "desired": consumers,
                                  "action": "hold", "reason": "within tolerance",
                                  "recommended": consumers, "total_lag": total})  # fmt: skip
    store.record_metrics(metrics)
    for d in decisions:
        store.record_decision(**d)
    store.replace_assignments({"w0": [0, 1], "w1": [2], "w2": [3]}, generation=2)
    top = store.current_scores(top_k=1)
    return {"top_user": str(top["user_id"].iloc[0]), "users": USERS,
            "total_lag": int((ends - offsets).sum())}  # fmt: skip


def populate_registry(uri: str, now: datetime) -> None:
    """Three versions of ``churn`` in a fresh MLflow store: v2 champion, v3 challenger."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    try:
        _populate_registry(uri, now)
    finally:
        mlflow.set_tracking_uri(previous)  # leave the process-wide URI as it was


def _populate_registry(uri: str, now: datetime) -> None:
    import mlflow
    from mlflow import MlflowClient

    from pipeline import registry

    registry.configure(uri)
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(registry.MODEL_NAME)
    metrics = {"1": (0.801, 0.412), "2": (0.842, 0.497), "3": (0.836, 0.489)}
    for v, (auc, ap) in metrics.items():
        with mlflow.start_run(run_name=f"candidate-{v}") as run:
            mlflow.log_metrics({"roc_auc": auc, "pr_auc": ap})
        tags = {"candidate": "xgb_small" if v != "1" else "logistic",
                "gate.challenger.roc_auc": f"{auc:.6f}", "gate.challenger.pr_auc": f"{ap:.6f}",
                "gate.decision": "promote" if v != "3" else "reject",
                "gate.reason": {"1": "no champion yet", "2": "pr_auc 0.497 > 0.412 + 0.005",
                                "3": "pr_auc 0.489 not above champion 0.497 + 0.005"}[v]}  # fmt: skip
        client.create_model_version(registry.MODEL_NAME, f"runs:/{run.info.run_id}/model",
                                    run_id=run.info.run_id, tags=tags)  # fmt: skip
    events = {"1": [{"at": (now - timedelta(days=9)).isoformat(), "by": "churn train",
                     "reason": "no champion yet", "previous": None, "scores": {"pr_auc": 0.412}}],
              "2": [{"at": (now - timedelta(days=2, hours=5)).isoformat(), "by": "drift retrain",
                     "reason": "pr_auc 0.497 > 0.412 + 0.005", "previous": "1",
                     "scores": {"pr_auc": 0.497}}]}  # fmt: skip
    for v, ev in events.items():
        client.set_model_version_tag(registry.MODEL_NAME, v, registry.PROMOTIONS_TAG,
                                     json.dumps(ev))  # fmt: skip
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION, "2")
    client.set_registered_model_alias(registry.MODEL_NAME, registry.CHALLENGER, "3")


def populate_drift(store: Store, now: datetime, report: Path, seed: int = 11) -> None:
    """Twelve checks, 10 minutes apart: drift builds to Critical; the last one rendered
    the full report."""
    from pipeline.drift.check import DriftResult, FeatureDrift

    rng = np.random.default_rng(seed)
    for i in range(12):
        t = now - timedelta(minutes=10 * (11 - i))
        scores = np.clip(rng.normal(0.02 + 0.012 * i * np.linspace(0.2, 1.6, len(FEATURES)),
                                    0.01), 0, None)  # fmt: skip
        feats = tuple(FeatureDrift(f, "wasserstein", float(sc), 0.1, bool(sc >= 0.1))
                      for f, sc in zip(FEATURES, scores, strict=True))  # fmt: skip
        drifted = sum(f.drifted for f in feats)
        share = drifted / len(feats)
        level = "Critical" if share >= 0.4 else "Warning" if share >= 0.2 else "Healthy"
        result = DriftResult(
            time=t, window_start=t - timedelta(hours=6), window_end=t, model_version="2",
            rows=8_000, reference_rows=10_000, drifted_count=drifted, drifted_share=share,
            dataset_drift=share >= 0.5, prediction=FeatureDrift("risk", "wasserstein",
                                                                0.01 * i, 0.1, 0.01 * i >= 0.1),
            features=feats, seconds=2.1, report_path=str(report) if i == 11 else None,
        )  # fmt: skip
        reasons = [f"{share:.0%} of features drifted"] if level != "Healthy" else []
        store.record_drift_run(result, level=level, reasons=reasons, source="w0")


def write_drift_report(data_dir: Path) -> Path:
    folder = data_dir / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "drift-20261127T120000Z-v2.html"
    path.write_text("<html><body style='font-family:sans-serif'><h2>Data drift report</h2>"
                    "<p>2 of 6 columns drifted (share 0.33)</p></body></html>")  # fmt: skip
    return path


def build(data_dir: Path, mlflow_uri: str | None) -> dict[str, object]:
    """Populate a data dir (store + drift report) and, if given, an MLflow registry."""
    now = datetime.now(UTC).replace(microsecond=0)
    data_dir.mkdir(parents=True, exist_ok=True)
    report = write_drift_report(data_dir)
    with Store(f"sqlite:///{data_dir / 'churn.db'}") as store:
        facts = populate_store(store, now)
        if hasattr(store, "record_drift_run"):  # the drift tables (store schema 2)
            populate_drift(store, now, report)
    if mlflow_uri is not None:
        populate_registry(mlflow_uri, now)
    return facts
