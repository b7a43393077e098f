"""`churn demo` (what `make demo` runs): the whole system on one machine, end to end.

simulate a history whose *live* continuation drifts (``content_outage`` a few simulated days
after the history ends: fewer, shorter sessions and more tickets -- a drift that moves many
features at once, so the checks go Critical and open a drift episode, whose retrain waits until
post-onset labels mature) → `churn up` → run the ``train/weekly`` deployment and wait →
run ``stream/live`` → a live producer (``churn produce``) → print the URLs and what to look
at → stay until Ctrl-C, then stop everything. ``--quick`` uses a small population, bounds
the producer, waits until the stream has caught up, prints what the store holds, and stops
by itself (CI runs it).

The data directory is the demo's for its whole run: a lock (``<data>/.churn-demo.lock``)
keeps a second demo out, and nothing is wiped while another demo or a recorded stack still
runs there or while a port is taken. Whatever ends a run (done, Ctrl-C, an error in any
step), what it started is stopped before the error is shown. The quick demo keeps its MLflow
registry in its data directory unless ``CHURN_MLFLOW_TRACKING_URI`` names one, so its small
14-day model never becomes the full demo's champion.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churn.stack import prefect_api, procs
from churn.stack.narrate import Narrator
from churn.stack.state import StackError, StackState, state_dir, state_path
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.errors import ConfigError
from pipeline.humanize import count, duration, money

MARKER = ".churn-demo"
LOCK = ".churn-demo.lock"  # held for the demo's lifetime (pipeline.pidlock); survives the wipe
DRIFT = "content_outage"
TRAIN_HORIZON_DAYS = 30  # = flows.train.train's default horizon_days (not imported: that pulls in Prefect)
QUICK_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


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

    @property
    def horizon_days(self) -> int:
        """The label horizon the demo trains with (the train flow's default unless set)."""
        return int(self.train_params.get("horizon_days", TRAIN_HORIZON_DAYS))


FULL = DemoPlan(20_000, 180, 4, 10, 1_000.0, None, {})
QUICK = DemoPlan(3_000, 100, 2, 3, 2_000.0, 10, {"horizon_days": 14, "leaky_control": False, "shap_sample": 300})


def quick_from_env(value: str | None) -> bool:
    """``DEMO_QUICK`` as the Makefile and `churn demo` read it: 1/true/yes quick, 0/false/no
    or empty (or unset) the full demo; anything else is refused rather than guessed."""
    key = (value or "").strip().lower()
    if key not in QUICK_VALUES:
        raise ConfigError(f"DEMO_QUICK={value!r} is neither quick (1, true, yes) nor full (0, false, no, empty); "
                          "e.g. DEMO_QUICK=1 make demo")  # fmt: skip
    return QUICK_VALUES[key]


def demo_settings(settings: Settings, plan: DemoPlan, quick: bool) -> Settings:
    """The settings the demo runs with: its partitions and, for the quick demo, a registry of
    its own under the data directory (wiped with it) unless CHURN_MLFLOW_TRACKING_URI names
    one. Sharing ``mlruns/`` made the quick demo's 14-day model the champion the full demo's
    30-day training was then refused against."""
    update: dict[str, Any] = {"partitions": plan.partitions}
    if quick and not settings.mlflow_tracking_uri:
        update["mlflow_tracking_uri"] = f"sqlite:///{settings.data_dir.resolve() / 'mlruns' / 'mlflow.db'}"
    return settings.model_copy(update=update)


def _owned(data: Path, overwrite: bool) -> bool:
    """Whether ``data`` holds anything (besides the demo's marker and lock); refuses data the
    demo did not make unless ``overwrite``."""
    if not (data.exists() and any(p.name not in (MARKER, LOCK) for p in data.iterdir())):
        return False
    if not ((data / MARKER).exists() or overwrite):
        raise StackError(f"{data} already holds data that `churn demo` did not make; pass --overwrite to replace "
                         f"it (make demo DEMO_ARGS=--overwrite) or choose another --data-dir (make demo DATA=dir)")  # fmt: skip
    return True


def prepare_data_dir(data: Path, overwrite: bool) -> None:
    """The demo owns its data directory: empty, or made by an earlier demo (then wiped, all
    but the lock a running demo holds on it)."""
    if _owned(data, overwrite):
        for p in data.iterdir():
            if p.name == LOCK:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    data.mkdir(parents=True, exist_ok=True)
    (data / MARKER).write_text("made by `churn demo`; the next demo run deletes this directory\n")


def claim_data_dir(settings: Settings, ports: dict[str, int], overwrite: bool) -> Any:
    """Before anything is wiped or simulated: refuse a data directory that another demo or a
    recorded stack still uses, or ports already taken; then lock the directory for this
    demo's lifetime and empty it. Returns the held :class:`~pipeline.pidlock.PidLock`.

    Wiping under a running stack deleted its state file: the first demo then died ("no stack
    recorded") and its dozen processes were invisible to `churn status` / `churn down`."""
    from churn.stack.services import build
    from churn.stack.stack import check_ports, running_state
    from pipeline.pidlock import PidLock

    data = settings.data_dir.resolve()
    _owned(data, overwrite)  # a foreign directory is refused before anything is written into it
    lock = PidLock(data / LOCK)
    if not lock.try_acquire():
        raise StackError(f"another `churn demo` (pid {lock.holder()}) is running on {data}; stop it first (Ctrl-C in "
                         f"its terminal) or give this one another data dir (make demo DATA=other/dir)")  # fmt: skip
    try:
        if st := running_state(settings):
            live = ", ".join(f"{s.name} (pid {s.pid})" for s in st.services if procs.alive(s.pid, s.started))
            raise StackError(f"a stack is still running on {data}: {live}; stop it first with `churn --data-dir "
                             f"{data} down` (make down DATA={data}), or give the demo another data dir "
                             f"(make demo DATA=other/dir)")  # fmt: skip
        check_ports(build(settings, ports))
        prepare_data_dir(data, overwrite)
    except BaseException:
        lock.release()
        raise
    return lock


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


def newest_day_checked(settings: Settings) -> bool:
    """A drift check (of any outcome) has a window ending on the newest scored event's day."""
    from pipeline.store import Store

    store = Store(settings.resolved_store_url)
    try:
        newest = store.score_summary().features_time
        runs = store.drift_runs(status=None)
    finally:
        store.close()
    if newest is None or not len(runs) or runs.window_end.isna().all():
        return False
    return bool(runs.window_end.max().date() >= newest.date())


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

        retrain_after_days = DriftConfig().after_days(plan.horizon_days)
    url = {s.name: s.url for s in state.services}
    day_s = 18.5 * plan.users / 20_000 * 1_000 / plan.rate  # wall seconds per simulated day at this rate
    drift_s = plan.drift_after_days * day_s
    retrain_s = retrain_after_days * day_s
    mlflow = [
        f"  MLflow     {mlflow_runs_url(url.get('mlflow'), experiment) or state.env.get('CHURN_MLFLOW_TRACKING_URI')}",
        "             experiment 'churn-train': expand the newest train-... run, tick its candidates, Compare "
        "(test_roc_auc, test_lift_at_10pct on one test window); Models: churn, each version's description says what "
        "the gate decided and why",
    ]
    if plan.live_days is not None:  # the quick demo: bounded, stops itself once the stream caught up
        return [
            "",
            "what to look at (quickly: this demo stops its stack by itself once the stream has caught up with its "
            f"{plan.live_days} live simulated days, about a minute from now):",
            f"  dashboard  {url.get('dashboard')}  Overview: events/s, lag, users scored, high risk, revenue at risk;",
            "             Stream: throughput and per-partition lag; Risk: top users with their reasons;",
            f"             Drift: the catalogue loses titles {plan.drift_after_days} simulated days into the live "
            f"stream (~{duration(drift_s)} at {count(plan.rate)} events/s); the few checks before the demo stops may "
            "go Critical and open a drift episode, but its retrain waits until post-onset labels mature "
            f"({retrain_after_days} simulated days): no retrain here;",
            "             `make demo` (the full demo, until Ctrl-C) runs long enough for the retrain and the gate's "
            "judgement on post-onset labels",
            *mlflow,
            f"  Prefect    {url.get('prefect')}  the train run and the stream/live run with their logs",
            "",
        ]
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
        *mlflow,
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
    """The demo as its steps; ``ready`` prints the stack's addresses once everything runs.

    However it ends (done, Ctrl-C, an error in any step; quick or full), what it started is
    stopped before the exception goes on to be shown, and the data directory's lock is
    released: an error used to leave the full demo's whole stack running."""
    plan = QUICK if quick else FULL
    # a small population scores few rows: check drift more often so the demo shows it (the
    # processes it starts inherit it; set for the demo only, so a caller's environment is
    # as it was afterwards)
    drift_every = quick and "CHURN_DRIFT_EVERY_ROWS" not in os.environ
    if drift_every:
        os.environ["CHURN_DRIFT_EVERY_ROWS"] = "20000"
    try:
        demo = _Demo(demo_settings(settings, plan, quick), plan, say, {}, [])
        t_all = time.monotonic()
        lock = claim_data_dir(demo.settings, ports, overwrite)
        try:
            return _steps(demo, ports, quick, foreground, ready, t_all)
        finally:
            try:
                stop(demo)
            finally:
                lock.release()
    finally:
        if drift_every:
            os.environ.pop("CHURN_DRIFT_EVERY_ROWS", None)


def _steps(demo: _Demo, ports: dict[str, int], quick: bool,
           foreground: Callable[[StackState, list[subprocess.Popen[bytes]], Callable[[], None]], None],
           ready: Callable[[StackState], None], t_all: float) -> dict[str, Any]:  # fmt: skip
    """simulate -> up -> train -> stream -> producer; then the foreground (full) or the
    bounded finish (quick). Stopping is :func:`run`'s."""
    plan, say = demo.plan, demo.say
    simulate(demo)
    start_stack(demo, ports)
    train(demo)
    t_stream = time.monotonic()
    start_stream(demo)
    producer = start_producer(demo)
    ready(demo.state)  # type: ignore[arg-type]
    from pipeline.drift.config import DriftConfig

    # what the stream's policy will use: the setting, else the champion's horizon
    after = DriftConfig.from_settings(demo.settings).after_days(plan.horizon_days)
    for line in what_to_look_at(demo.state, plan, experiment_id(demo.settings), after):  # type: ignore[arg-type]
        say(line)
    if not quick:
        foreground(demo.state, demo.children, demo.narrate)  # type: ignore[arg-type]
        return {"timings": demo.timings}
    summary = finish_quick(demo, producer, t_stream)
    demo.timed("total", t_all)
    return {"timings": demo.timings, "store": summary}


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ctrl-C / SIGTERM ignored while stopping (bounded: the grace period, twice), as
    `churn up`'s foreground does: a second Ctrl-C must not cut the shutdown short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])


def stop(demo: _Demo) -> None:
    """Stop what this demo started, if anything still runs (the full demo's foreground has
    stopped it already after Ctrl-C): the recorded stack, or its known children when the
    state file is gone."""
    from churn.stack.stack import down

    if not state_path(demo.settings.data_dir).exists() and all(c.poll() is not None for c in demo.children):
        return
    with _shielded():
        demo.say("stopping the stack ...")
        down(demo.settings, out=demo.say, children=demo.children)


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


def registry_versions(settings: Settings) -> list[str]:
    """Every version of the model in the demo's registry now ([] before the first one)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.registry import MODEL_NAME

    try:
        found = MlflowClient(tracking_uri=settings.resolved_mlflow_uri).search_model_versions(f"name='{MODEL_NAME}'")
    except MlflowException:
        return []  # no registered model yet
    return sorted((str(v.version) for v in found), key=int)


def champion_mismatch(settings: Settings, horizon_days: int) -> tuple[str, str] | None:
    """``(version, why)`` when the registry's champion is not comparable with the model the
    demo trains (another label horizon, feature spec or topic, e.g. a 14-day model trained
    by hand or by an older quick demo in the shared ``mlruns/``); None otherwise. The gate
    would refuse the demo's model and the stream keep scoring with that champion."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.features.spec import DEFAULT_SPEC
    from pipeline.registry import CHAMPION, MODEL_NAME
    from pipeline.training.gate import Identity, differences

    try:
        champ = MlflowClient(tracking_uri=settings.resolved_mlflow_uri).get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except MlflowException:
        return None  # no champion (or no model) yet
    why = differences(Identity(horizon_days, DEFAULT_SPEC.version, settings.topic), Identity.from_tags(champ.tags))
    return (str(champ.version), "; ".join(why)) if why else None


def _final_train_line(line: str) -> bool:
    """The train run log's last line (pipeline.training.report.final_line)."""
    return line.startswith(("gate: ", "not registered"))


def train(demo: _Demo) -> None:
    """[3/5] the train deployment, waited for; its log lines are echoed.

    The demo simulates a fresh history, so its training must be able to become the champion
    the stream follows: a champion it cannot be compared with is replaced (``force``, said
    and recorded by the gate), a comparable one is gated against as usual."""
    state, params = demo.state, dict(demo.plan.train_params)
    api = state.env["PREFECT_API_URL"]  # type: ignore[union-attr]
    before = registry_versions(demo.settings)  # older runs' versions: their gate lines are not this run's news
    if mismatch := champion_mismatch(demo.settings, demo.plan.horizon_days):
        demo.say(f"the registry's champion v{mismatch[0]} is not comparable with the model this demo trains "
                 f"({mismatch[1]}): this training replaces it (force)")  # fmt: skip
        params["force"] = True
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
    echoed = prefect_api.final_log_lines(api, fr["id"], _final_train_line)  # Prefect flushes logs in batches
    for line in echoed:
        demo.say(f"  | {line}")
    demo.say(f"trained and registered in {duration(demo.timings['train'])} (run {fr.get('name')})")
    demo.narrator = narrator(demo.settings, api)
    # this run was narrated above (drift-triggered ones will be); versions from earlier runs are not news
    demo.narrator.mark_said([f"run:{fr['id']}", *(f"gate:{v}" for v in before)])
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
    # The drift check of the newest window runs off the hot path: a replay that outran its
    # checks reads the newest state once caught up (DriftHook._catch_up) and checks it.
    end = time.monotonic() + 120
    while not (checked := newest_day_checked(settings)) and time.monotonic() < end:
        time.sleep(3)
    if not checked:
        demo.say("no drift check of the newest event day within 120 s (the report shows the checks so far)")
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
