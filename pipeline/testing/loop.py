"""The whole ground-truth loop in compressed time, in one process (issue 18).

:func:`closed_loop` simulates a history in which the world changes on ``drift_day``
(a scenario of :mod:`pipeline.simulator.scenarios`; time is compressed by a short label
horizon, :data:`pipeline.simulator.scenarios.COMPRESSED`, and by replaying the log as fast
as the worker scores it), trains a champion on the days before the drift, then streams
the log through one worker with drift checks and the episode retrain policy on:

1. a Critical check opens a drift episode (onset estimated from the drifted streak);
2. the retrain is deferred until the horizon has passed since the onset (and churners);
3. the requester retrains on cutoffs from the onset on, gates challenger against champion
   on the post-onset test rows and, if promoted, the workers get the new version:

   * in-process (:class:`InlineRetrain`, the default): what the train deployment does,
     published straight to the workers' pointer file;
   * through an orchestrator (``retrain=`` :class:`Orchestrated`, e.g. a real Prefect
     server: ``flows.retrain.PrefectRunRequester`` creates a ``train/weekly`` run, the real
     train flow trains, gates -- recording its outcome beside the episode -- and moves the
     registry's champion alias), with the worker's champion coming from the registry
     (``champion=`` a :class:`pipeline.stream.champion.RegistryChampion`), as in production;

4. the worker switches; the episode closes;
5. afterwards the realised performance (:mod:`pipeline.monitoring.update`) per scoring
   day and model version shows the drop during the episode and the recovery after it.

Compressed time and an orchestrator: the log holds the whole simulated history, so the run
gets ``end`` = the last day the stream has seen (it must not train on the future), and the
replay pauses while the run trains -- event time stands still, as if training took no
time: the request returns once the run is terminal, after one poll of the champion source
(the supervisor's poll), so the worker's next model check switches to a promoted version.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.features.timebase import to_us

log = logging.getLogger(__name__)


@dataclass
class LoopRun:
    """What happened, with event-time dates (``timeline``) and the realised rows."""

    timeline: list[tuple[str, str]] = field(default_factory=list)  # (event date, what)
    realised: pd.DataFrame = field(default_factory=pd.DataFrame)
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)
    gate: dict[str, Any] = field(default_factory=dict)
    drift_day: date | None = None
    promoted_on: date | None = None
    promoted_version: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # orchestrator runs: id, state, seconds, parameters
    versions: list[str] = field(default_factory=list)  # model versions of the stored scores, oldest first

    def auc(self, since: date | None = None, until: date | None = None, version: str | None = None) -> float:
        """Mean realised ROC-AUC of the scoring days in [since, until) (of ``version``)."""
        r = self.realised.dropna(subset=["roc_auc"])
        if version is not None:
            r = r[r["model_version"] == version]
        d = r["day"].dt.date
        if since is not None:
            r = r[d >= since]
            d = r["day"].dt.date
        if until is not None:
            r = r[d < until]
        return float(r["roc_auc"].mean()) if len(r) else float("nan")

    def after(self, share: float = 0.8) -> float:
        """Mean realised ROC-AUC of the days after the promotion on which the retrained
        version had published the scores of at least ``share`` of the users (right after a
        promotion, users the stream has not rescored yet still carry the old version's score)."""
        if self.promoted_on is None:
            return float("nan")
        r = self.realised[self.realised["day"].dt.date >= self.promoted_on]
        total = r.groupby("day")["n"].transform("sum")
        new = r[(r["model_version"] == self.promoted_version) & (r["n"] >= share * total)].dropna(subset=["roc_auc"])
        return float(new["roc_auc"].mean()) if len(new) else float("nan")

    def during(self) -> float:
        """Mean realised ROC-AUC of the scoring days from the drift to the promotion."""
        return self.auc(since=self.drift_day, until=self.promoted_on) if self.promoted_on else float("nan")

    def recovery(self) -> float:
        """Realised ROC-AUC after the retrain minus during the drift episode."""
        return self.after() - self.during()


class InlineRetrain:
    """The requester of :func:`closed_loop`: what the train deployment does, in-process."""

    def __init__(self, log_: Any, paths: Any, store: Any, candidate: str, horizon_days: int, seed: int,
                 run: LoopRun, start_us: int, tracking_uri: str | None = None) -> None:
        self.log, self.paths, self.store, self.run = log_, paths, store, run
        self.tracking_uri = tracking_uri
        self.candidate, self.horizon, self.seed, self.start_us = candidate, horizon_days, seed, start_us
        self.version = 1

    def request(self, req: Any) -> str:
        from pipeline.config import PROJECT_ROOT
        from pipeline.evaluation import metrics
        from pipeline.features.registry import FEATURE_SET_VERSION
        from pipeline.stream.drift_hook import write_reference
        from pipeline.stream.model import export_model, load_export, publish, read_pointer
        from pipeline.training.data import build_dataset, reference_sample
        from pipeline.training.fit import fit_candidate
        from pipeline.training.gate import decide, post_onset_rows
        from pipeline.training.specs import load_spec

        params = dict(req.payload.get("train_parameters") or {})
        now = datetime.fromisoformat(req.payload["window_end"])
        start = date.fromisoformat(params["start"]) if params.get("start") else None
        ds = build_dataset(self.log, self.horizon, int(params.get("every_days", 1)), start, now.date(),
                           warmup_days=params.get("warmup_days"), latest=bool(params.get("gate_from")))  # fmt: skip
        reference = reference_sample(ds, self.seed)[list(ds.features)]  # the post-onset world as it is now
        model = fit_candidate(load_spec(PROJECT_ROOT / "models" / f"{self.candidate}.yaml"), ds.part("train"),
                              ds.part("val"), ds.features, seed=self.seed)  # fmt: skip
        test = ds.part("test")
        keep = post_onset_rows(test["cutoff"], params.get("gate_from"), test["label"].to_numpy(), min_rows=100,
                               min_positives=5)  # fmt: skip
        test = test[keep]
        y = test["label"].to_numpy()
        champion = load_export(read_pointer(self.paths.champion))
        chal = metrics(y, model.predict_proba(test))
        champ = metrics(y, _score(champion, test))
        d = decide(chal, champ, champion_version=str(self.version))
        self.run.gate = {"decision": d.decision, "reason": d.reason, "challenger": dict(d.challenger),
                         "champion": dict(d.champion or {}), "test_rows": int(len(test)),
                         "train_rows": int(len(ds.part("train")))}  # fmt: skip
        day = now.date().isoformat()
        self.run.timeline.append((day, f"retrain (in-process) on cutoffs from {params.get('start')} "
                                       f"({len(ds.table):,} rows)"))
        self.store.record_retrain_decision(time=now, model_version=str(self.version), decision=f"gate {d.decision}",
                                           reason=d.reason, episode_id=req.payload.get("episode_id"),
                                           run=f"inline-{self.version + 1}", now=datetime.now().astimezone())
        if d.promoted and self.tracking_uri:
            register(self.tracking_uri, model, ds, test, reference, self.horizon)
        if d.promoted:
            self.version += 1
            train = ds.part("train")
            ref = export_model(model, str(self.version), FEATURE_SET_VERSION, self.paths.models,
                               base_rate=float(train["label"].mean()))
            write_reference(Path(ref.path), reference[list(model.features)])
            publish(self.paths.champion, ref)
            self.run.promoted_on = now.date() + timedelta(days=1)  # scored with it from the next midnight
            self.run.promoted_version = str(self.version)
        return f"inline-{self.version}"


@dataclass(frozen=True)
class Orchestrated:
    """Retrain through an orchestrator, for :func:`closed_loop`: ``create`` is the retrain
    requester that creates the train run and returns its id (``flows.retrain.PrefectRunRequester``);
    ``wait(run_id)`` blocks until that run is terminal and returns its final state type
    (``COMPLETED``, ``FAILED``, ...; :meth:`pipeline.testing.prefect_server.LocalPrefect.wait_run`)."""

    create: Any
    wait: Callable[[str], str]
    name: str = "train/weekly"
    ready: Callable[[], Any] | None = None  # blocks until the deployment can take runs (e.g. served)


class AwaitRun:
    """The requester of :func:`closed_loop` with an orchestrator (see the module doc): the
    run trains on data up to the stream's event time, the replay waits for it, then the
    champion source is polled once (``follow``: the version the workers now score with)."""

    def __init__(self, orch: Orchestrated, follow: Callable[[], str | None], run: LoopRun) -> None:
        self.orch, self.follow, self.run = orch, follow, run

    def request(self, req: Any) -> str:
        from pipeline.drift.retrain import RetrainRequest

        now = datetime.fromisoformat(req.payload["window_end"])
        day = now.date().isoformat()
        params = dict(req.payload.get("train_parameters") or {})
        params.setdefault("end", (now - timedelta(microseconds=1)).date().isoformat())  # the last day seen
        before = self.follow()
        if self.orch.ready is not None:
            self.orch.ready()
        t0 = time.monotonic()
        run_id = self.orch.create.request(RetrainRequest(req.model_version, tuple(req.because),
                                                         {**req.payload, "train_parameters": params}))  # fmt: skip
        if not run_id:
            raise RuntimeError(f"{type(self.orch.create).__name__} created no {self.orch.name} run to wait for")
        window = f"cutoffs {params.get('start', '(usual)')}..{params['end']}"
        self.run.timeline.append((day, f"retrain: {self.orch.name} run {run_id} created ({window}, gate from "
                                       f"{params.get('gate_from', '-')}); the replay waits for it"))
        state = self.orch.wait(str(run_id))
        seconds = time.monotonic() - t0
        self.run.runs.append({"id": str(run_id), "state": state, "seconds": seconds, "parameters": params,
                              "time": now})  # fmt: skip
        after = self.follow()
        self.run.timeline.append((day, f"retrain: {self.orch.name} run {run_id} {state} after {seconds:.0f} s wall "
                                       "time; "
                                       f"the champion is v{after}" + (f" (was v{before})" if after != before else "")))
        if after != before:
            self.run.promoted_on = now.date() + timedelta(days=1)  # scored with it from the next midnight
            self.run.promoted_version = after
        return str(run_id)


class FollowChampion:
    """The supervisor's job for :func:`closed_loop`'s worker: export the version the
    champion source points at (with its reference) and publish it to the worker's pointer."""

    def __init__(self, source: Any, paths: Any) -> None:
        self.source, self.paths = source, paths
        self.version: str | None = None

    def __call__(self) -> str | None:
        from pipeline.stream.model import publish

        info = self.source.current()
        if info is not None and info.version != self.version:
            publish(self.paths.champion, self.source.export(info, self.paths.models))
            self.version = info.version
        return self.version


def store_url(work: Path) -> str:
    """The store :func:`closed_loop` streams into (a train run records its gate outcome there)."""
    return f"sqlite:///{Path(work).resolve() / 'churn.db'}"


def register(uri: str, model: Any, ds: Any, test: pd.DataFrame, reference: pd.DataFrame, horizon_days: int,
             by: str = "closed_loop") -> tuple[str, Any]:
    """Log ``model`` to the MLflow registry at ``uri`` and gate it on ``test`` (as the
    train flow does), so the dashboard's Model page has versions, tags and the champion."""
    import mlflow

    from pipeline import registry
    from pipeline.evaluation import metrics

    experiment = registry.configure(uri)
    y = test["label"].to_numpy()
    test_metrics = metrics(y, model.predict_proba(test))
    with mlflow.start_run(experiment_id=experiment, run_name=f"loop-{len(ds.table)}"):
        info = registry.log_model(model, ds.part("train").head(5), reference, ds.registry_doc, ds.feature_set_version)
    tags = {"candidate": model.name if hasattr(model, "name") else "model", "horizon_days": str(horizon_days),
            registry.FEATURE_SET_TAG: ds.feature_set_version,
            registry.BASE_RATE_TAG: f"{float(ds.part('train')['label'].mean()):.6f}",
            **{f"test_{m}": f"{v:.6f}" for m, v in test_metrics.items()}}  # fmt: skip
    version = registry.register(info.model_uri, tags)
    decision = registry.run_gate(version, test_metrics, test, y, ds.feature_set_version, datetime.now().astimezone(),
                                 by, challenger_scores=model.predict_proba(test))  # fmt: skip
    return str(version), decision


def _score(scoring_model: Any, frame: pd.DataFrame) -> np.ndarray:
    from pipeline.features.registry import FEATURE_NAMES

    values = np.zeros((len(frame), len(FEATURE_NAMES)), np.float64)
    for j, name in enumerate(FEATURE_NAMES):
        if name in frame.columns:
            values[:, j] = frame[name].to_numpy(np.float64)
    return np.asarray(scoring_model.predict(values), np.float64)


def closed_loop(work: Path, drift: str = "content_outage", drift_day: int = 60, *, users: int = 3_000,
                days: int = 100, seed: int = 3, horizon_days: int = 7, candidate: str = "logistic",
                retrain_after_days: int = 21, min_churners: int = 30, lookback_days: int = 28, partitions: int = 2,
                drift_config: Any = None, tracking_uri: str | None = None, retrain: Orchestrated | None = None,
                champion: Any = None, say: Callable[[str], None] | None = None) -> LoopRun:
    """Run the loop (see the module doc); returns the timeline and the realised rows.
    ``tracking_uri``: also register the champion and the retrain in that MLflow registry
    (the dashboard's Model page reads it) and log the realised metrics to their runs.
    ``retrain``: retrain through an orchestrator (:class:`Orchestrated`) instead of in-process.
    ``champion``: where the worker's champion comes from (a ChampionSource, e.g.
    ``RegistryChampion(tracking_uri)``; the first one is registered there), instead of the
    in-process export; followed after every orchestrated retrain. ``say``: progress lines."""
    from pipeline.clock import SystemClock
    from pipeline.config import PROJECT_ROOT
    from pipeline.drift.config import DriftConfig
    from pipeline.errors import ConfigError, StreamError
    from pipeline.features.registry import FEATURE_SET_VERSION
    from pipeline.log import open_log
    from pipeline.monitoring.update import update_realised
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history
    from pipeline.store import Store
    from pipeline.stream.config import StreamConfig, StreamPaths
    from pipeline.stream.drift_hook import DriftHook, write_reference
    from pipeline.stream.model import export_model, publish
    from pipeline.stream.worker import Worker
    from pipeline.training.data import build_dataset
    from pipeline.training.fit import fit_candidate
    from pipeline.training.specs import load_spec

    if champion is not None and not tracking_uri:
        raise ConfigError("closed_loop(champion=...) needs tracking_uri: the first champion is registered there")
    say = say or (lambda line: None)
    work = Path(work)
    sim = SimConfig(users=users, days=days, seed=seed, drift=drift, drift_day=drift_day)
    say(f"simulating {users:,} users x {days} days ({drift!r} from day {drift_day}) into {work / 'log'} ...")
    log_ = open_log(work / "log", "events", num_partitions=partitions)
    simulate_history(Simulator(sim), log_, work / "sim")
    start = sim.start.date() if hasattr(sim.start, "date") else sim.start
    t0 = to_us(sim.start)
    run = LoopRun(drift_day=start + timedelta(days=drift_day))
    run.timeline.append((run.drift_day.isoformat(), f"the world changes: scenario {drift!r} (simulated)"))
    say(f"training v1 ({candidate}) on the days before the drift, {horizon_days}-day label horizon ...")
    ds = build_dataset(log_, horizon_days, 3, end=start + timedelta(days=drift_day))
    model = fit_candidate(load_spec(PROJECT_ROOT / "models" / f"{candidate}.yaml"), ds.part("train"), ds.part("val"),
                          ds.features, seed=seed)  # fmt: skip
    train = ds.part("train")
    paths = StreamPaths(work, "loop")
    reference = train.sample(min(5_000, len(train)), random_state=seed)[list(model.features)]
    follow = None
    if champion is None:
        ref = export_model(model, "1", FEATURE_SET_VERSION, paths.models, base_rate=float(train["label"].mean()))
        write_reference(Path(ref.path), reference)
        publish(paths.champion, ref)
    if tracking_uri:  # the reference logged with it is the one the drift checks use
        register(tracking_uri, model, ds, ds.part("test"), reference, horizon_days)
    if champion is not None:
        follow = FollowChampion(champion, paths)
        if follow() is None:
            raise StreamError(f"no champion to stream with: {getattr(champion, 'missing', '') or champion.where}")
        run.timeline.append((start.isoformat(), f"the stream scores with v{follow.version} (trained on the days before "
                                                f"the drift) from {champion.where}"))
    cfg = drift_config or DriftConfig(executor="inline", full_report_every=0, warmup_days=drift_day - 8,
                                      retrain_after_days=retrain_after_days, retrain_min_churners=min_churners,
                                      retrain_lookback_days=lookback_days, retrain_every_days=1,
                                      retrain_cooldown_hours=24)  # fmt: skip
    store = Store(store_url(work))
    try:
        if retrain is None:
            requester: Any = InlineRetrain(log_, paths, store, candidate, horizon_days, seed, run, t0, tracking_uri)
        else:
            requester = AwaitRun(retrain, follow or (lambda: None), run)
        w = Worker("w0", log_, store, paths, StreamConfig(group="loop", batch_size=1_000, max_wait_s=0.0,
                                                           checkpoint_interval_s=0.2, flush_interval_s=0.1,
                                                           model_check_s=0.001),
                   partitions=range(partitions))  # fmt: skip
        w.drift = DriftHook("w0", cfg, store, work, w.clock, requester=requester)
        say(f"streaming the {days}-day history through a worker with daily drift checks and the retrain policy "
            f"(retrain {retrain_after_days} days after the onset, >= {min_churners} churners) ...")
        w.run(until_caught_up=True)
        w.drift.close()
        say("computing the realised performance of every scoring day whose labels matured ...")
        upd = update_realised(store, log_, horizon_days, SystemClock(), n_boot=0)
        run.realised = upd.rows
        if tracking_uri and len(upd.rows):
            from pipeline.monitoring.update import log_to_mlflow

            log_to_mlflow(upd.rows)
        run.decisions = store.retrain_decisions()
        run.episodes = store.drift_episodes()
        run.versions = list(dict.fromkeys(upd.rows["model_version"].astype(str))) if len(upd.rows) else []
        for r in run.decisions.itertuples(index=False):
            due = "" if pd.isna(r.due) else f" (until {pd.Timestamp(r.due).date()})"
            by = f" [{r.source} run {r.run}]" if r.decision.startswith("gate") else ""
            run.timeline.append((pd.Timestamp(r.time).date().isoformat(), f"{r.decision}{due}: {r.reason}{by}"))
            if r.decision.startswith("gate") and not run.gate:  # an orchestrated run recorded it
                run.gate = {"decision": r.decision.removeprefix("gate "), "reason": r.reason, "run": r.run,
                            "source": r.source}  # fmt: skip
        if run.promoted_on is not None:
            run.timeline.append((run.promoted_on.isoformat(), f"the stream scores with the retrained champion "
                                                              f"v{run.promoted_version}"))
        run.timeline.sort(key=lambda x: (x[0], _rank(x[1])))
        return run
    finally:
        store.close()
        log_.close()


# the order of one day's timeline entries: what happened first
_ORDER = ("the stream scores with v", "the world changes", "episode opened", "deferred", "requested",
          "retrain (in-process)", "retrain: created", "sent", "failed to send", "skipped", "retrain: finished",
          "gate ", "episode closed", "the stream scores with the retrained")


def _rank(what: str) -> int:
    if what.startswith("retrain: "):
        what = "retrain: created" if " created " in what else "retrain: finished"
    return next((i for i, p in enumerate(_ORDER) if what.startswith(p)), len(_ORDER))


def describe(run: LoopRun) -> str:
    """The timeline, one line per event; a run of daily deferrals with the same due date is one line."""
    lines: list[str] = []
    runs: list[tuple[str, str, str]] = []  # (first day, last day, what) with deferrals merged
    for d, what in run.timeline:
        prev = runs[-1] if runs else None
        if prev and what.startswith("deferred") and prev[2].startswith("deferred") and \
                prev[2].split(":")[0] == what.split(":")[0]:  # same "deferred (until X)"
            runs[-1] = (prev[0], d, what)
        else:
            runs.append((d, d, what))
    for first, last, what in runs:
        span = first if first == last else f"{first}..{last[5:]}"
        lines.append(f"{span}  {what}" + (" (at every daily check)" if first != last else ""))
    if run.promoted_on is not None and run.drift_day is not None:
        before = run.auc(since=run.drift_day - timedelta(days=21), until=run.drift_day)
        lines.append(f"realised ROC-AUC (mean per scoring day): 21 days before the drift {before:.3f}, during the "
                     f"episode {run.during():.3f}, after the retrain {run.after():.3f} "
                     f"(recovery {run.recovery():+.3f})")
    return "\n".join(lines)


