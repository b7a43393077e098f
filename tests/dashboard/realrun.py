"""A small *real* run for the dashboard tests: every row the app reads is written by the
project's own code, not made up.

:func:`build` (about a minute on 2 cores):

1. simulates ``users`` x ``days`` with the ``content_outage`` drift scenario from
   ``drift_day`` (the real simulator, a 4-partition file log);
2. replays the log into labelled snapshots, fits the ``logistic`` and ``xgboost``
   candidate specs from ``models/`` and registers both in a temporary MLflow registry
   through the champion gate (v1 promoted as the first model, v2 decided by the gate);
3. runs the streaming supervisor (real worker processes, 1..2 consumers, autoscaling on)
   with the registered champion until the log is caught up, into a SQLite store;
4. runs drift checks (Evidently, ``DriftMonitor`` with the inline executor) of live
   feature vectors at cutoffs before and after the drift day against the champion's
   training reference, the last one rendering the full HTML report; critical checks
   request a retrain (the request goes to a recording requester).

The facts returned are read back from what was written (so the tests compare the pages
with the store, never with numbers fixed here).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import PROJECT_ROOT

USERS = 2_000
DAYS = 90
DRIFT_DAY = 70
PARTITIONS = 4
TOPIC = "events"
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def _say(msg: str, t0: float) -> None:
    print(f"[dashboard real run +{time.monotonic() - t0:5.1f} s] {msg}", flush=True)


def simulate(data_dir: Path, users: int, days: int, drift_day: int, seed: int) -> None:
    from pipeline.log import open_log
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history

    log = open_log(data_dir / "log", TOPIC, num_partitions=PARTITIONS)
    try:
        cfg = SimConfig(
            users=users, days=days, seed=seed, drift="content_outage", drift_day=drift_day
        )
        simulate_history(Simulator(cfg), log, data_dir / "sim")
    finally:
        log.close()


def train_and_register(data_dir: Path, uri: str) -> dict[str, str]:
    """Fit logistic then xgboost on the pre-drift part of the log; register both through
    the gate. Returns {version: candidate}."""
    import mlflow

    from pipeline import registry
    from pipeline.evaluation import metrics
    from pipeline.log import open_log
    from pipeline.training.data import build_dataset
    from pipeline.training.fit import fit_candidate
    from pipeline.training.specs import load_spec

    log = open_log(data_dir / "log", TOPIC, create=False)
    try:
        ds = build_dataset(log, horizon_days=14, every_days=3)
    finally:
        log.close()
    experiment = registry.configure(uri)  # artifacts beside the temp database, not in ./mlruns
    train, val, test = ds.part("train"), ds.part("val"), ds.part("test")
    reference = train.sample(min(2_000, len(train)), random_state=1)
    out = {}
    for name in ("logistic", "xgboost"):
        model = fit_candidate(
            load_spec(PROJECT_ROOT / "models" / f"{name}.yaml"), train, val, ds.features, seed=1
        )
        test_metrics = metrics(test["label"].to_numpy(), model.predict_proba(test))
        with mlflow.start_run(experiment_id=experiment, run_name=name):
            info = registry.log_model(
                model, train.head(5), reference, ds.registry_doc, ds.feature_set_version
            )
        test_from, test_to = ds.window("test")
        tags = {
            "candidate": name,
            "test_window": f"{test_from}..{test_to}",
            registry.FEATURE_SET_TAG: ds.feature_set_version,
            **{f"test_{m}": f"{v:.6f}" for m, v in test_metrics.items()},
        }  # as flows.train does
        version = registry.register(info.model_uri, tags)
        registry.run_gate(
            version,
            test_metrics,
            test,
            test["label"].to_numpy(),
            ds.feature_set_version,
            datetime.now(UTC),
            "pytest",
        )
        out[version] = name
    return out


CHECK_STEP_S = 15  # seconds between the drift checks' (fake) clock stamps
LIVE_EVENTS = 12_000  # produced once the replay caught up: the steady part of the run
LIVE_RATE = 1_500.0  # events/s (the demo's live producer runs at 1,000-2,000)


def _produce_when_caught_up(data_dir: Path, store_url: str, done: threading.Event,
                            stop: threading.Event, events: int, rate: float) -> None:
    """The live producer (``churn produce``), started once the stream has caught up with the
    replayed history (every partition reports lag 0), as in ``make demo``."""
    from pipeline.log import open_log
    from pipeline.simulator.history import produce_live
    from pipeline.store import Store

    try:
        while not stop.is_set():
            if Path(store_url.removeprefix("sqlite:///")).exists():
                with Store(store_url, read_only=True) as store:
                    latest = store.latest_metrics()
                if len(latest) == PARTITIONS and int(latest["lag"].fillna(1).sum()) == 0:
                    break
            stop.wait(0.2)
        if stop.is_set():
            return
        log = open_log(data_dir / "log", TOPIC, create=False)
        try:
            produce_live(data_dir / "sim", log, rate, max_events=events, should_stop=stop.is_set)
        finally:
            log.close()
    finally:
        done.set()


def stream(
    data_dir: Path, store_url: str, uri: str, rate: float | None = 15_000.0,
    live_events: int = LIVE_EVENTS, live_rate: float = LIVE_RATE,
) -> dict[str, Any]:
    """Replay the history until caught up; then (``live_events`` > 0) a live producer adds
    events at ``live_rate`` while the stream keeps up, and the run ends a few ticks after it."""
    from pipeline.stream.champion import RegistryChampion
    from pipeline.stream.config import StreamConfig
    from pipeline.stream.supervisor import Supervisor

    cfg = StreamConfig(
        batch_size=500,
        max_wait_s=0.05,
        workers=1,
        min_workers=1,
        max_workers=2,
        metrics_interval_s=0.5,
        autoscale_interval_s=1.0,
        lag_threshold=5_000,
        checkpoint_interval_s=2.0,
        flush_interval_s=0.2,
        max_events_per_s=rate,
    )
    sup = Supervisor(
        data_dir,
        TOPIC,
        store_url,
        RegistryChampion(uri),
        cfg,
        logger=logging.getLogger("tests.dashboard.realrun"),
    )
    if live_events <= 0:
        try:
            return sup.run(until_caught_up=True, max_seconds=600)
        finally:
            sup.store.close()
    done, stop = threading.Event(), threading.Event()
    producer = threading.Thread(target=_produce_when_caught_up, name="producer",
                                args=(data_dir, store_url, done, stop, live_events, live_rate))
    producer.start()
    ended: list[float] = []

    def finished() -> bool:  # the producer is done and the stream has ticked at lag 0 since
        if done.is_set() and not ended:
            ended.append(time.monotonic())
        return bool(ended) and time.monotonic() - ended[0] > 1.0 and sup.caught_up()

    try:
        return sup.run(should_stop=finished, max_seconds=600)  # ends when finished(); the limit is for a wedged run
    finally:
        stop.set()
        producer.join()
        sup.store.close()


def drift_checks(
    data_dir: Path, store_url: str, uri: str, drift_day: int, start: datetime
) -> list[Any]:
    """Checks of live vectors at four cutoffs (two before, two after the drift day)."""
    import mlflow

    from pipeline import registry
    from pipeline.clock import FakeClock
    from pipeline.drift.config import DriftConfig
    from pipeline.drift.monitor import DriftMonitor
    from pipeline.drift.reports import drift_dir
    from pipeline.features.registry import FEATURE_NAMES
    from pipeline.features.timebase import DAY_US, to_us
    from pipeline.labels import build_snapshots
    from pipeline.log import open_log
    from pipeline.store import Store

    mlflow.set_tracking_uri(uri)
    champ = registry.champion_version()
    bundle = registry.load_bundle(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}")
    days = [drift_day - 12, drift_day - 4, drift_day + 8, drift_day + 16]
    cuts = [to_us(start) + d * DAY_US for d in days]
    log = open_log(data_dir / "log", TOPIC, create=False)
    try:
        table = build_snapshots(log, horizon_days=1, cutoffs_us=cuts).table
    finally:
        log.close()
    # the checks ran every STEP_S seconds, up to now (wall clock: what the stream stamps), all
    # after the models were registered (as in a real run: a retrain request precedes its gate)
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=CHECK_STEP_S * len(cuts)))
    sent: list[dict[str, Any]] = []
    cfg = DriftConfig(
        executor="inline", min_rows=200, full_report_every=0, retrain_cooldown_hours=0.0,
        retrain_policy="immediate",
    )
    outcomes = []
    with Store(store_url) as store:
        mon = DriftMonitor.from_bundle(
            bundle,
            str(champ.version),
            config=cfg,
            store=store,
            report_dir=drift_dir(data_dir),
            clock=clock,
            source="stream-w0",
            requester=lambda req: sent.append({"event": req}),
        )
        try:
            for i, cut in enumerate(cuts):
                clock.advance(CHECK_STEP_S)
                rows = table[table["cutoff"] == pd.Timestamp(cut, unit="us", tz="UTC")]
                values = rows[list(FEATURE_NAMES)].to_numpy(np.float64)
                risk = np.asarray(bundle.model.predict_proba(rows[list(FEATURE_NAMES)]), np.float64)
                at = datetime.fromtimestamp(cut / 1e6, UTC)
                mon.window.clear()
                mon.observe(values, risk, at, users=rows["user_id"].tolist())
                mon.submit(full_report=i == len(cuts) - 1)
                outcomes += mon.poll(wait=None)
        finally:
            mon.close()
    return outcomes


def read_facts(store_url: str, uri: str, data_dir: Path | None = None) -> dict[str, Any]:
    """What the pages should show, read back from the store and the registry."""
    from mlflow import MlflowClient

    from pipeline import registry
    from pipeline.store import Store
    from pipeline.stream.config import DEFAULT_GROUP
    from pipeline.stream.report import report_threshold

    with Store(store_url, read_only=True) as store:
        hr = report_threshold(store, DEFAULT_GROUP, None, data_dir)  # the stream's default rule
        summary = store.score_summary(high_risk=hr.cut)
        top = store.current_scores(top_k=1)
        latest = store.latest_metrics()
        runs = store.drift_runs()
    aliases = MlflowClient(tracking_uri=uri).get_registered_model(registry.MODEL_NAME).aliases
    return {
        "users": summary.users,
        "churned": summary.churned_users,
        "high_risk": summary.high_risk_users,
        "high_risk_threshold": hr.threshold,
        "high_risk_text": hr.text(),
        "top_user": str(top["user_id"].iloc[0]),
        "total_lag": int(latest["lag"].fillna(0).sum()),
        "consumers": int(latest["worker"].nunique()),
        "drift_runs": len(runs),
        "drift_level": str(runs["level"].iloc[-1]),
        "champion": str(aliases.get(registry.CHAMPION)),
        "challenger": None
        if registry.CHALLENGER not in aliases
        else str(aliases[registry.CHALLENGER]),
    }


def build(
    root: Path, users: int = USERS, days: int = DAYS, drift_day: int = DRIFT_DAY, seed: int = 3
) -> dict[str, Any]:
    """Populate ``root/data`` (log, store, drift reports) and ``root/mlruns``; return facts."""
    from pipeline.simulator import SimConfig

    for k, v in QUIET.items():
        os.environ.setdefault(k, v)
    t0 = time.monotonic()
    data_dir = root / "data"
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    store_url = f"sqlite:///{data_dir / 'churn.db'}"
    simulate(data_dir, users, days, drift_day, seed)
    _say(f"simulated {users:,} users x {days} days", t0)
    versions = train_and_register(data_dir, uri)
    _say(f"trained and registered {versions}", t0)
    summary = stream(data_dir, store_url, uri)
    _say(
        f"stream: {summary['events']:,} events in {summary['seconds']:.1f} s, stopped: {summary['stopped']}",
        t0,
    )
    outcomes = drift_checks(data_dir, store_url, uri, drift_day, SimConfig().start)
    _say(f"drift: {[(o.alert.level.value, o.retrain_requested) for o in outcomes]}", t0)
    facts = read_facts(store_url, uri, data_dir)
    _say(f"done: {facts['users']:,} active users scored, champion v{facts['champion']}", t0)
    return {
        "data_dir": data_dir,
        "uri": uri,
        "store_url": store_url,
        "versions": versions,
        "stream": summary,
        "drift": outcomes,
        **facts,
    }


if __name__ == "__main__":  # python -m tests.dashboard.realrun /tmp/dir: build one to look at
    import sys

    logging.basicConfig(level=logging.INFO)
    print(build(Path(sys.argv[1])))
