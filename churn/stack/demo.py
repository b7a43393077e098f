"""`churn demo` (what `make demo` runs): the whole system on one machine, end to end.

simulate a history whose *live* continuation drifts (``content_outage`` a few simulated days
after the history ends: fewer, shorter sessions and more tickets -- a drift that moves many
features at once, so the checks go Critical and open a drift episode, whose retrain waits until
post-onset labels mature) → `churn up` → run the ``train/weekly`` deployment and wait →
run ``stream/live`` → a live producer (``churn produce``) → print the URLs and what to look
at → stay until Ctrl-C, then stop everything. ``--quick`` uses a small population, bounds
the producer, waits until the stream has caught up, prints what the store holds, and stops
by itself (CI runs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn.stack import prefect_api, procs
from churn.stack.narrate import Narrator
from churn.stack.state import StackError, StackState, state_dir
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.humanize import count, duration, money

MARKER = ".churn-demo"
DRIFT = "content_outage"


@dataclass(frozen=True)
class DemoPlan:
    users: int
    days: int
    partitions: int
    drift_after_days: int  # the drift starts this many simulated days into the live stream
    rate: float  # producer events/s
    live_days: int | None  # producer stops after this many simulated days (None: until Ctrl-C)
    train_params: dict[str, Any]

    @property
    def drift_day(self) -> int:
        return self.days + self.drift_after_days


FULL = DemoPlan(20_000, 180, 4, 10, 1_000.0, None, {})
QUICK = DemoPlan(3_000, 100, 2, 3, 2_000.0, 10, {"horizon_days": 14, "leaky_control": False, "shap_sample": 300})


def prepare_data_dir(data: Path, overwrite: bool) -> None:
    """The demo owns its data directory: empty, or made by an earlier demo (then wiped)."""
    if data.exists() and any(p.name != MARKER for p in data.iterdir()):
        if not ((data / MARKER).exists() or overwrite):
            raise StackError(f"{data} already holds data that `churn demo` did not make; pass --overwrite to replace "
                             f"it (make demo DEMO_ARGS=--overwrite) or choose another --data-dir (make demo DATA=dir)")  # fmt: skip
        shutil.rmtree(data)
    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text("made by `churn demo`; the next demo run deletes this directory\n")


def _churn(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-m", "churn.cli", "--data-dir", str(settings.data_dir.resolve()),
            "--topic", settings.topic, "--partitions", str(settings.partitions), *args]  # fmt: skip


def group_lag(settings: Settings) -> int:
    from pipeline.log import open_configured_log
    from pipeline.stream.config import DEFAULT_GROUP

    log = open_configured_log(settings, create=False)
    try:
        done = log.committed(DEFAULT_GROUP)
        return sum(max(log.partition_info(p).end_offset - done.get(p, 0), 0) for p in range(log.num_partitions))
    finally:
        log.close()


def store_summary(settings: Settings) -> dict[str, Any]:
    from pipeline.store import Store
    from pipeline.stream.report import configured_threshold

    store = Store(settings.resolved_store_url)
    try:
        hr = configured_threshold(store, settings)
        s = store.score_summary(high_risk=hr.cut)
        drift = store.drift_runs()
        return {"users_scored": s.users, "high_risk": s.high_risk_users, "high_risk_rule": hr.text(),
                "model_versions": list(s.model_versions),
                "newest_event": None if s.features_time is None else s.features_time.isoformat(),
                "metric_rows": len(store.metrics_since()), "drift_checks": len(drift),
                "drift_levels": sorted(set(drift["level"])) if len(drift) else []}  # fmt: skip
    finally:
        store.close()


def live_status(settings: Settings) -> str | None:
    """One line on what the stream is doing now, from the store (read-only); None before
    the stream has written anything."""
    from pipeline.errors import ChurnError
    from pipeline.store import Store

    try:
        store = Store(settings.resolved_store_url, read_only=True)
    except ChurnError:
        return None  # no store yet (the stream creates it)
    try:
        from pipeline.stream.report import configured_threshold

        latest = store.latest_metrics()
        s = store.score_summary(high_risk=configured_threshold(store, settings).cut)
        drift = store.drift_runs()
    except ChurnError:
        return None
    finally:
        store.close()
    if latest.empty:
        return None
    latest = latest.sort_values("time").drop_duplicates("partition", keep="last")
    lag_s = latest["lag_seconds"].dropna()
    level = str(drift.sort_values("time")["level"].iloc[-1]) if len(drift) else "no check yet"
    return (f"stream: {count(latest['events_per_s'].fillna(0).sum())} events/s, lag "
            f"{count(int(latest['lag'].fillna(0).sum()))} records ({duration(float(lag_s.max()) if len(lag_s) else 0.0)} "
            f"behind), {count(s.users)} active users scored, {count(s.high_risk_users)} high risk, "
            f"{money(s.expected_monthly_loss)}/month at risk; drift: {level}")  # fmt: skip


def _store_records(settings: Settings, table: str) -> list[dict[str, Any]]:
    """One of the store's tables as records (read-only); [] before the stream created the store."""
    from pipeline.errors import ChurnError
    from pipeline.store import Store

    try:
        store = Store(settings.resolved_store_url, read_only=True)
    except ChurnError:
        return []  # no store yet (the stream creates it)
    try:
        return getattr(store, table)().to_dict(orient="records")
    except ChurnError:
        return []
    finally:
        store.close()


def narrator(settings: Settings, api: str) -> Narrator:
    """The loop's narrator on this stack: the store's drift runs, Prefect's train runs, the registry."""

    def drift() -> list[dict[str, Any]]:
        return _store_records(settings, "drift_runs")

    def gated() -> list[tuple[str, dict[str, str]]]:
        from pipeline.registry import gated_versions

        return gated_versions(settings.resolved_mlflow_uri)

    def decisions() -> list[dict[str, Any]]:
        return _store_records(settings, "retrain_decisions")

    return Narrator(drift, lambda: prefect_api.flow_runs(api, "train"), gated, decisions)


def final_report(settings: Settings, seconds: float) -> list[str]:
    """The quick demo's closing lines: events, lag, the top at-risk active users."""
    from pipeline.log import open_configured_log
    from pipeline.store import Store
    from pipeline.stream.config import DEFAULT_GROUP, StreamConfig
    from pipeline.stream.report import stream_report

    log = open_configured_log(settings, create=False)
    store = Store(settings.resolved_store_url, read_only=True)
    try:
        return stream_report(store, log, DEFAULT_GROUP, {}, seconds=seconds, stopped="caught up",
                             high_risk=StreamConfig.from_settings(settings).high_risk_rule,
                             data_dir=settings.data_dir).lines()
    finally:
        store.close()
        log.close()


def mlflow_runs_url(base: str | None, experiment_id: str | None) -> str | None:
    """The experiment's run list in MLflow's "Model training" view (its UI otherwise opens on
    the GenAI overview, whatever the experiment's kind)."""
    if not base or not experiment_id:
        return base
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiment_id(settings: Settings) -> str | None:
    from mlflow import MlflowClient

    from pipeline.registry import EXPERIMENT

    exp = MlflowClient(tracking_uri=settings.resolved_mlflow_uri).get_experiment_by_name(EXPERIMENT)
    return None if exp is None else exp.experiment_id


def what_to_look_at(state: StackState, plan: DemoPlan, experiment: str | None = None,
                    retrain_after_days: int | None = None) -> list[str]:
    if retrain_after_days is None:
        from pipeline.drift.config import DriftConfig

        retrain_after_days = DriftConfig().retrain_after_days
    url = {s.name: s.url for s in state.services}
    day_s = 18.5 * plan.users / 20_000 * 1_000 / plan.rate  # wall seconds per simulated day at this rate
    drift_s = plan.drift_after_days * day_s
    retrain_s = retrain_after_days * day_s
    return [
        "",
        "what to look at:",
        f"  dashboard  {url.get('dashboard')}  Overview: events/s, lag, users scored, high risk, revenue at risk;",
        "             Stream: throughput and per-partition lag; Risk: top users with their reasons;",
        f"             Drift: the catalogue loses titles {plan.drift_after_days} simulated days into the live stream "
        f"(~{duration(drift_s)} at {count(plan.rate)} events/s) - "
        "watch the drifted share climb to Critical;",
        "             a Critical check opens a drift episode; its retrain waits until post-onset labels mature "
        f"({retrain_after_days} simulated days, ~{duration(retrain_s)} more), then train/weekly retrains and the "
        "gate judges on post-onset labels (Drift page: the decision table; Model page: realised performance)",
        f"  MLflow     {mlflow_runs_url(url.get('mlflow'), experiment) or state.env.get('CHURN_MLFLOW_TRACKING_URI')}",
        "             experiment 'churn-train': expand the newest train-... run, tick its candidates, Compare "
        "(test_roc_auc, test_lift_at_10pct on one test window); Models: churn, each version's description says what "
        "the gate decided and why",
        f"  Prefect    {url.get('prefect')}  the train run and the running stream/live run with their logs",
        "",
    ]


@dataclass
class _Demo:
    """One demo run's moving parts: the steps below share them."""

    settings: Settings
    plan: DemoPlan
    say: Callable[[str], None]
    timings: dict[str, float]
    children: list[subprocess.Popen[bytes]]
    state: StackState | None = None
    narrator: Narrator | None = None

    def narrate(self) -> None:
        """Say what the loop did since the last call (drift -> retrain -> gate)."""
        if self.narrator is not None:
            for line in self.narrator.poll():
                self.say(f"{time.strftime('%H:%M:%S')} {line}")

    def timed(self, name: str, t0: float) -> float:
        self.timings[name] = time.monotonic() - t0
        return self.timings[name]


def run(settings: Settings, ports: dict[str, int], quick: bool, overwrite: bool, say: Callable[[str], None],
        foreground: Callable[[StackState, list[subprocess.Popen[bytes]], Callable[[], None]], None],
        ready: Callable[[StackState], None] = lambda _state: None) -> dict[str, Any]:  # fmt: skip
    """The demo as its steps; ``ready`` prints the stack's addresses once everything runs."""
    from churn.stack.stack import down

    plan = QUICK if quick else FULL
    if quick:  # a small population scores few rows: check drift more often so the demo shows it
        os.environ.setdefault("CHURN_DRIFT_EVERY_ROWS", "20000")
    demo = _Demo(settings.model_copy(update={"partitions": plan.partitions}), plan, say, {}, [])
    t_all = time.monotonic()
    prepare_data_dir(demo.settings.data_dir.resolve(), overwrite)
    simulate(demo)
    start_stack(demo, ports)
    try:
        train(demo)
        t_stream = time.monotonic()
        start_stream(demo)
        producer = start_producer(demo)
        ready(demo.state)  # type: ignore[arg-type]
        from pipeline.drift.config import DriftConfig

        after = DriftConfig.from_settings(demo.settings).retrain_after_days  # what the stream's policy will use
        for line in what_to_look_at(demo.state, plan, experiment_id(demo.settings), after):  # type: ignore[arg-type]
            say(line)
        if not quick:
            foreground(demo.state, demo.children, demo.narrate)  # type: ignore[arg-type]
            return {"timings": demo.timings}
        summary = finish_quick(demo, producer, t_stream)
        demo.timed("total", t_all)
        return {"timings": demo.timings, "store": summary}
    finally:
        if quick:
            say("stopping the stack ...")
            down(demo.settings, out=say, children=demo.children)


def simulate(demo: _Demo) -> None:
    """[1/5] the history, whose live continuation drifts."""
    plan, t = demo.plan, time.monotonic()
    demo.say(f"[1/5] simulating {plan.users:,} users x {plan.days} days (drift '{DRIFT}' from day {plan.drift_day}, "
             f"in the live stream) ...")  # fmt: skip
    subprocess.run(_churn(demo.settings, "simulate", "--users", str(plan.users), "--days", str(plan.days), "--drift",
                          DRIFT, "--drift-day", str(plan.drift_day)), check=True, cwd=PROJECT_ROOT)  # fmt: skip
    demo.timed("simulate", t)


def start_stack(demo: _Demo, ports: dict[str, int]) -> None:
    """[2/5] `churn up`: Prefect server, served deployments, MLflow UI, dashboard."""
    from churn.stack.stack import up

    demo.say("[2/5] starting the stack (churn up) ...")
    t = time.monotonic()
    demo.state = up(demo.settings, ports, out=demo.say, children=demo.children)
    demo.timed("up", t)


def train(demo: _Demo) -> None:
    """[3/5] the train deployment, waited for; its log lines are echoed."""
    state, params = demo.state, demo.plan.train_params
    api = state.env["PREFECT_API_URL"]  # type: ignore[union-attr]
    flags = "".join(f" -p {k}={v}" for k, v in params.items())
    demo.say(f"[3/5] training through the deployment: prefect deployment run 'train/weekly'{flags}")
    t = time.monotonic()
    fr = prefect_api.run_deployment(api, "train/weekly", params)
    fr = prefect_api.wait(api, fr["id"], {"COMPLETED"}, timeout_s=1800, progress=demo.say)
    demo.timed("train", t)
    if prefect_api.state_of(fr)[0] != "COMPLETED":
        serve_log = Path(state.service("serve").log)  # type: ignore[union-attr]
        raise StackError(f"training run {fr.get('name')} ended {prefect_api.state_of(fr)[1]}; last lines of "
                         f"{serve_log}:\n{procs.tail(serve_log, 25)}")  # fmt: skip
    echoed = prefect_api.log_lines(api, fr["id"])
    for line in echoed:
        demo.say(f"  | {line}")
    demo.say(f"trained and registered in {duration(demo.timings['train'])} (run {fr.get('name')})")
    demo.narrator = narrator(demo.settings, api)
    demo.narrator.mark_said([f"run:{fr['id']}"])  # this run was narrated above; drift-triggered ones will be
    for line in demo.narrator.poll():  # the gate's decision, from the registry, unless the log just said it
        if line not in echoed:
            demo.say(line)


def start_stream(demo: _Demo) -> None:
    """[4/5] the stream deployment, waited for until it runs."""
    api = demo.state.env["PREFECT_API_URL"]  # type: ignore[union-attr]
    demo.say("[4/5] streaming through the deployment: prefect deployment run 'stream/live'")
    sr = prefect_api.run_deployment(api, "stream/live")
    prefect_api.wait(api, sr["id"], {"RUNNING"}, timeout_s=300, progress=demo.say)


def start_producer(demo: _Demo) -> subprocess.Popen[bytes]:
    """[5/5] a live producer (`churn produce`), adopted into the stack's pid record."""
    from churn.stack.stack import adopt
    from churn.stack.state import load, state_path

    plan, data = demo.plan, demo.settings.data_dir.resolve()
    log = state_dir(data) / "logs" / "producer.log"
    args = ["produce", "--rate", str(plan.rate)] + (["--days", str(plan.live_days)] if plan.live_days else [])
    demo.say(f"[5/5] live producer: churn produce {' '.join(args[1:])} (log {log})")
    producer = procs.launch(_churn(demo.settings, *args), env=_env(), cwd=PROJECT_ROOT, log=log)
    demo.children.append(producer)
    adopt(demo.settings, "producer", producer, log)
    demo.state = load(state_path(data)) or demo.state
    return producer


def finish_quick(demo: _Demo, producer: subprocess.Popen[bytes], t_stream: float) -> dict[str, Any]:
    """--quick: wait for the bounded producer, the stream's catch-up and a drift check; report."""
    settings, log = demo.settings, demo.settings.data_dir.resolve()
    serve_log = demo.state.service("serve").log  # type: ignore[union-attr]
    rc = producer.wait(timeout=600)
    if rc != 0:
        plog = state_dir(log) / "logs" / "producer.log"
        raise StackError(f"the producer exited with code {rc}; last lines of {plog}:\n{procs.tail(plog, 15)}")
    demo.say("producer done; waiting for the stream to catch up ...")
    end = time.monotonic() + 300
    while (lag := group_lag(settings)) > 0:
        demo.narrate()
        if time.monotonic() > end:
            raise StackError(f"the stream still lags {lag:,} records after 300 s; see {serve_log}")
        time.sleep(2)
    end = time.monotonic() + 60  # the drift check of the newest window runs off the hot path
    while not store_summary(settings)["drift_checks"] and time.monotonic() < end:
        time.sleep(3)
    time.sleep(3)  # let the last metrics flush
    summary = store_summary(settings)
    demo.narrate()
    for line in final_report(settings, time.monotonic() - t_stream):
        demo.say(line)
    demo.say(f"store: {summary}")
    if not summary["users_scored"] or not summary["metric_rows"]:
        raise StackError(f"the stream wrote no scores/metrics ({summary}); see {serve_log}")
    return summary


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
