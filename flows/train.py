"""The `train` flow: snapshots -> cross-validate candidates -> select -> refit + calibrate
-> references -> explain -> revenue -> log -> register -> gate. Thin wiring: every task
calls :mod:`pipeline` functions (:mod:`pipeline.training`).

Run it directly (``churn train``; Prefect starts a temporary API server in-process) or as
the served deployment ``train/weekly`` (see :mod:`flows.serve`). Parameters (data window,
horizon, candidates, seed, gate, campaign) show in the Prefect UI.

Retries: reading the log and talking to MLflow (a locked SQLite file, a tracking server
hiccup) retry; fitting and evaluating are deterministic and do not. Registering and the
gate are idempotent per training run, so a retry never adds a second version or a second
promotion.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.env import quiet_environment
from flows.retries import transient
from pipeline.config import PROJECT_ROOT, load_settings

TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
MLFLOW_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [2, 10], "retry_condition_fn": transient}
# the data tasks: one retry after 5 s of a passing failure (a refusal, ChurnError, is final)
DATA_RETRIES: dict[str, Any] = {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": transient}


def _logger() -> logging.Logger | Any:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:  # called through .fn() outside a run
        return logging.getLogger("flows.train")


@dataclass
class Timer:
    seconds: dict[str, float]

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


# -- tasks -------------------------------------------------------------------------------
@task(name="build-snapshots", **DATA_RETRIES, **TASK)
def build_snapshots(data_dir: str, topic: str, horizon_days: int, every_days: int, start: date | None,
                    end: date | None, folds: int, test_frac: float, gap_days: int | None, warmup_days: int | None,
                    latest: bool = False):
    from pipeline.errors import TrainingError
    from pipeline.ingest.ledger import load_profile
    from pipeline.ingest.profile import annotate_dataset
    from pipeline.log import open_log
    from pipeline.training.data import build_dataset
    from pipeline.training.report import describe_split

    log_dir = Path(data_dir) / "log"
    if not (log_dir / topic).exists():
        raise TrainingError(f"no event log at {log_dir / topic}; run `churn simulate` (or produce events) first")
    log = open_log(log_dir, topic)
    try:
        ds = build_dataset(log, horizon_days, every_days, start, end, test_frac=test_frac, folds=folds,
                           gap_days=gap_days, warmup_days=warmup_days, latest=latest)
    finally:
        log.close()
    annotate_dataset(ds, load_profile(Path(data_dir), topic))  # imported data: which features are defaults
    text, warnings = describe_split(ds)
    _logger().info("snapshots: %s", text)
    for w in warnings:
        _logger().warning("%s", w)
    return ds


@task(name="references", **DATA_RETRIES, **TASK)
def references(ds, data_dir: str, topic: str, leaky: bool):
    """Oracle scores (if the simulator's hazard table exists) and leaky features."""
    from pipeline.log import open_log
    from pipeline.training.data import leaky_features, oracle_scores

    oracle = oracle_scores(ds, Path(data_dir) / "sim")
    leaky_frame = None
    if leaky:
        log = open_log(Path(data_dir) / "log", topic)
        try:
            leaky_frame = leaky_features(log, ds)
        finally:
            log.close()
    _logger().info("references: oracle %s, leaky control %s", "yes" if oracle is not None else "no (no hazard table)",
                   "yes" if leaky else "off")
    return oracle, leaky_frame


def _applicable(specs: list, features: list[str]) -> list:
    """Candidates whose named features the topic's feature spec has; the others are skipped, said once."""
    from pipeline.errors import SpecError

    keep = [sp for sp in specs if not sp.missing_features(features)]
    for sp in specs:
        if sp not in keep:
            _logger().warning("candidate %s skipped: this topic's features lack %s", sp.name, sp.missing_features(features))
    if not keep:
        raise SpecError("no candidate applies to this topic's features; add a spec under models/ with `features: all`")
    return keep


@task(name="cross-validate", task_run_name="cv-{spec.name}", **TASK)
def cross_validate(spec, ds, seed: int, directions: dict[str, int] | None):
    from pipeline.training.cv import cross_validate as run_cv

    res = run_cv(spec, ds, seed, directions)
    _logger().info("%s: %d folds, fold ROC-AUC %s; mean %.4f +- %.4f", spec.name, len(res.folds),
                   " ".join(f"{v:.3f}" for v in res.values("roc_auc")), res.mean("roc_auc"), res.std("roc_auc"))
    return res


@task(name="select", **TASK)
def select(results, metric: str):
    from pipeline.training.cv import select as choose

    sel = choose(results, metric)
    (_logger().warning if sel.within_noise else _logger().info)("selected %s", sel.message)
    return sel


@task(name="refit-calibrate", task_run_name="refit-{spec.name}", **TASK)
def refit(spec, ds, cv, seed: int, directions: dict[str, int] | None):
    from pipeline.humanize import duration
    from pipeline.training.compare import refit_and_calibrate

    ev = refit_and_calibrate(spec, ds, cv, seed, directions)
    t = ev.metrics["test"]
    _logger().info("%s: refit in %s on %s pretest rows; %s calibration (fold log loss %s); test ROC-AUC %.4f, "
                   "lift@10%% %.2f, ECE %.4f (uncalibrated %.4f)", spec.name, duration(ev.fit_seconds),
                   f"{len(ds.part('train')):,}", ev.calibration.calibrator.method,
                   ", ".join(f"{k} {v:.4f}" for k, v in ev.calibration.fold_log_loss.items()), t["roc_auc"],
                   t["lift_10"], t["ece"], t["ece_uncalibrated"])
    if ev.calibration.note:
        _logger().info("%s calibration: %s", spec.name, ev.calibration.note)
    return ev


@task(name="reference-models", **TASK)
def reference_models(ds, oracle, leaky_frame, specs, cvs, seed: int):
    """The oracle (fold + test metrics on the same rows) and the leaky control (test only)."""
    from pipeline.training.compare import evaluate_scores, fit_reference
    from pipeline.training.cv import scores_cv
    from pipeline.training.data import LEAKY_SUFFIX

    out = []
    if leaky_frame is not None:
        main = next((sp for sp in specs if sp.kind == "xgboost"), specs[0])
        lk = fit_reference("leaky", main, ds, leaky_frame, seed)
        lk.kind = f"{main.kind} on features at cutoff+horizon ({LEAKY_SUFFIX})"
        out.append(lk)
    if oracle is not None:
        test = (ds.table["split"] == "test").to_numpy()
        pre = (ds.table["split"] == "train").to_numpy()
        out.append(evaluate_scores("oracle", "reference", ds, oracle[test], kind="simulator hazard",
                                   cv=scores_cv("oracle", "simulator hazard", ds, oracle[pre], cvs[0])))
    for e in out:
        _logger().info("%s: test ROC-AUC %.4f", e.name, e.metrics["test"]["roc_auc"])
    return out


@task(name="compare-on-test", **TASK)
def compare_on_test(main, evals, seed: int) -> dict[str, dict[str, float]]:
    """Test ROC-AUC of the main model minus each other candidate's, with bootstrap 95 % CIs."""
    from pipeline.evaluation import paired_auc_difference

    return {e.name: paired_auc_difference(e.info["y_test"], main.test_scores, e.test_scores, seed=seed)
            for e in evals if e is not main and e.role == "candidate"}


@task(name="explain", **TASK)
def explain(ev, ds, out_dir: str, sample: int, seed: int):
    from pipeline.explain import write_report

    test = ds.part("test")
    rep = write_report(ev.model, test, ev.test_scores, Path(out_dir), ids=test[["user_id", "cutoff"]],
                       sample=sample, seed=seed)
    from pipeline.humanize import duration

    _logger().info("SHAP for %s: %d rows in %s (%.0f rows/s); top features %s", ev.name, rep.sample_rows,
                   duration(rep.seconds), rep.rows_per_second, ", ".join(rep.importance["feature"].head(3)))
    return rep


@task(name="revenue", **TASK)
def revenue(ev, ds, campaign, default_revenue: float):
    """Revenue at risk and the campaign, on the champion's calibrated probabilities."""
    from pipeline.revenue import business_summary, sweep
    from pipeline.training.compare import PRICE_FEATURE, monthly_revenue

    test = ds.part("test")
    rev, how = monthly_revenue(test, default_revenue)
    profile = getattr(ds, "data_source", None) or {}  # an imported source: where its prices come from
    if note := {**profile.get("derived", {}), **profile.get("defaulted", {})}.get(PRICE_FEATURE):
        how += f"; ASSUMED, not this source's prices ({note})"
    summary = business_summary(ev.test_scores, test["label"], rev, campaign)
    table = sweep(ev.test_scores, test["label"], rev, campaign)
    from pipeline.humanize import count, money

    _logger().info("revenue (%s, test window): %s churners, %s lost over %g months; contacting the top %.0f%% at "
                   "%.0f%% effectiveness prevents %s churners, saves %s, net %s; best K %.0f%%", ev.name,
                   count(summary["baseline_churners"]), money(summary["revenue_lost"]), campaign.months,
                   campaign.top_share * 100, campaign.effectiveness * 100, count(summary["churners_prevented"]),
                   money(summary["revenue_saved"]), money(summary["net_value"]), summary["best_top_share"] * 100)
    return summary, table, how


@task(name="start-tracking", **MLFLOW_RETRIES, **TASK)
def start_tracking(tracking_uri: str, params: dict[str, Any], tags: dict[str, str]):
    from pipeline import registry
    from pipeline.training.tracking import start_parent

    exp = registry.configure(tracking_uri)
    run_id = start_parent(exp, f"train-{datetime.now(UTC):%Y%m%d-%H%M%S}", params, tags)
    _logger().info("MLflow: %s experiment %s, parent run %s", tracking_uri, registry.EXPERIMENT, run_id)
    return exp, run_id


@task(name="log-run", task_run_name="log-{ev.name}", **MLFLOW_RETRIES, **TASK)
def log_run(exp: str, parent: str, ev, params: dict[str, Any], ds, seed: int, description: str,
            shap_dir: str | None = None) -> dict[str, str | None]:
    """One child run; a candidate's calibrated model is logged into it (signature, input
    example), so every candidate can be compared and the chosen one registered from its run."""
    import mlflow

    from pipeline import registry
    from pipeline.training.report import candidate_curves
    from pipeline.training.tracking import DatasetInput, log_artifacts, log_candidate

    imp = ev.model.importance() if ev.model is not None else None
    extra = {k: float(v) for k, v in ev.info.items() if k in ("predict_seconds", "best_iteration", "shap_seconds",
                                                                "shap_rows_per_second")}
    cols = [*ds.features, "label"]
    inputs = [DatasetInput(ds.part("train")[cols], "training", ds.window("train")),
              DatasetInput(ds.part("test")[cols], "test", ds.window("test"))]
    run_id = log_candidate(exp, parent, ev.name, params, ev.metrics, candidate_curves(ev), imp,
                           tags={"role": ev.role, "kind": ev.kind, "calibration": str(ev.info.get("calibration", "-"))},
                           extra_metrics=extra | {"fit_seconds": ev.fit_seconds},
                           folds=ev.cv.table() if ev.cv is not None else None, description=description,
                           datasets=inputs)
    if shap_dir:
        log_artifacts(run_id, Path(shap_dir), "shap")
    model_uri = None
    if ev.role == "candidate" and ev.model is not None:
        from pipeline.training.data import reference_sample

        train = ds.part("train")
        reference = reference_sample(ds, seed)  # after a drift: the world as it is now
        with mlflow.start_run(run_id=run_id):
            model_uri = registry.log_model(ev.model, train.head(5), reference, ds.registry_doc,
                                           ds.feature_set_version).model_uri
    return {"run_id": run_id, "model_uri": model_uri}


@task(name="register", **MLFLOW_RETRIES, **TASK)
def register(ev, ds, logged: dict[str, str | None], parent: str, topic: str, selection):
    """Register the chosen candidate's model, logged in its run (once per training run)."""
    import mlflow

    from pipeline import registry
    from pipeline.training.report import version_tags

    existing = mlflow.MlflowClient().search_model_versions(
        f"name='{registry.MODEL_NAME}' and tags.train_run_id='{parent}'")
    if existing:  # a retry after a registered version: do not add another
        return str(existing[0].version)
    version = registry.register(logged["model_uri"], version_tags(ev, ds, parent, logged["run_id"], topic, selection))
    _logger().info("registered %s as %s version %s (alias %s)", ev.name, registry.MODEL_NAME, version,
                   registry.CHALLENGER)
    return version


def gate_window(ds, gate_from: date | None) -> str:
    """The cutoffs the gate judges on: the test window, or its post-onset part after a drift."""
    first, last = ds.window("test")
    return f"{first}..{last}" if gate_from is None else f"{max(str(gate_from)[:10], first)}..{last} (post-onset cutoffs)"


@task(name="gate", **MLFLOW_RETRIES, **TASK)
def gate(version: str, ev, ds, policy, by: str, force: bool, seed: int, gate_from: date | None = None):
    import mlflow

    from pipeline import registry
    from pipeline.training.gate import GateDecision
    from pipeline.training.report import version_description

    client = mlflow.MlflowClient()
    mv = client.get_model_version(registry.MODEL_NAME, version)
    if "gate.decision" in mv.tags:  # a retry after the decision was recorded
        return GateDecision(mv.tags["gate.decision"] == "promoted", mv.tags.get("gate.reason", ""),
                            {m: float(mv.tags.get(f"gate.challenger.{m}", "nan")) for m in policy.metrics},
                            champion_version=mv.tags.get("gate.champion_version") or None)
    from pipeline.evaluation import metrics as score_metrics
    from pipeline.training.gate import post_onset_rows

    test = ds.part("test")
    window = gate_window(ds, gate_from)
    metrics, scores = ev.metrics["test"], ev.test_scores
    if gate_from is not None:  # after a drift episode: challenger and champion on post-onset labels only
        keep = post_onset_rows(test["cutoff"], gate_from, test["label"].to_numpy())
        test, scores = test[keep], scores[keep]
        metrics = score_metrics(test["label"].to_numpy(), scores)
        _logger().info("gate on %d post-onset test rows (cutoffs from %s)", len(test), gate_from)
    now = datetime.now(UTC)
    d = registry.run_gate(version, metrics, test, test["label"].to_numpy(), ds.feature_set_version,
                          now, by, policy, challenger_scores=scores, force=force, seed=seed, window=window)
    champ_tags = (client.get_model_version(registry.MODEL_NAME, d.champion_version).tags
                  if d.champion_version else None)
    registry.describe_version(version, version_description(
        d, version, ev.name, window, len(test), int(test["label"].sum()), f"{now:%Y-%m-%d %H:%M} UTC", policy,
        champ_tags))
    return d  # the run log ends with the gate line (both scores, one window): see train()


@task(name="record-gate-outcome", **TASK)
def record_gate_outcome(store_url: str, episode_id: str, version: str, decision, end: date | None,
                        run: str) -> str | None:
    """After a drift retrain (``episode_id``): the gate's outcome as one retrain decision
    (``gate promoted`` / ``gate rejected``, with its reason and this run) beside the
    episode's decisions in the stream's store, so the Drift page shows how the episode
    ended. Event time: the midnight after ``end`` (the data the gate judged ended there),
    now if the window was open. A failure to write is logged, never fails the training:
    the model is registered and the alias moved (or not) either way. Returns the decision id."""
    from datetime import timedelta

    from pipeline.drift.episodes import GATE_PROMOTED, GATE_REJECTED

    now = datetime.now(UTC)
    at = now if end is None else datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    champion = decision.champion_version or version  # the episode belongs to the champion it was compared with
    store = None
    try:
        from pipeline.store import Store

        store = Store(store_url)
        did = store.record_retrain_decision(
            time=at, model_version=str(champion), decision=GATE_PROMOTED if decision.promoted else GATE_REJECTED,
            reason=f"churn v{version}: {decision.reason}", episode_id=str(episode_id), run=run, source="train",
            now=now)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - recording the outcome must not fail a finished training
        _logger().error("could not record the gate outcome of v%s for drift episode %s in %s: %s: %s", version,
                        episode_id, store_url, type(exc).__name__, exc)
        return None
    finally:
        if store is not None:
            store.close()
    _logger().info("drift episode %s: gate %s recorded in %s", episode_id, decision.decision, store_url)
    return did


def _run_ref(parent: str) -> str:
    """This training as the retrain decisions name it: the Prefect flow run id, else the MLflow run."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.flow_run is not None:
        return str(ctx.flow_run.id)
    return f"mlflow:{parent}"


@task(name="log-summary", **MLFLOW_RETRIES, **TASK)
def log_summary(parent: str, evals, selection, rev, versus, decision, version, seconds: dict[str, float],
                register_model: bool, window: str | None = None) -> None:
    from pipeline import registry
    from pipeline.training.compare import comparison_table, cv_table
    from pipeline.training.plots import revenue_sweep
    from pipeline.training.report import summary_metrics, summary_tags
    from pipeline.training.tracking import log_summary as write

    rev_summary, rev_table, rev_how = rev
    tables = {"revenue_sweep": rev_table, "cv_folds": cv_table(evals)}
    if register_model:
        tables["alias_history"] = registry.alias_history()
    write(parent, comparison_table(evals), {e.name: (e.info["y_test"], e.test_scores) for e in evals},
          summary_metrics(rev_summary, versus, selection, seconds, evals), tables=tables,
          figures={"revenue_sweep": revenue_sweep(rev_table)}, tags=summary_tags(selection, version, decision, window),
          text={"summary/revenue_note.txt": f"monthly revenue per user: {rev_how}\n",
                "summary/selection.txt": selection.message + "\n"})


# -- the flow ----------------------------------------------------------------------------
@flow(name="train", description="Cross-validate candidate churn models over time, select, refit and calibrate the "
      "chosen one, explain, simulate revenue, register it and gate it against a comparable champion.")
def train(
    data_dir: str | None = None,
    topic: str | None = None,
    start: date | None = None,
    end: date | None = None,
    horizon_days: int = 30,
    every_days: int = 7,
    folds: int = 4,
    test_frac: float = 0.2,
    gap_days: int | None = None,
    warmup_days: int | None = None,
    candidates: list[str] | None = None,
    seed: int = 42,
    select_by: str = "roc_auc",
    directions: dict[str, int] | None = None,
    gate_metrics: tuple[str, ...] = ("roc_auc", "lift_10"),
    gate_tolerance: float = 0.0,
    gate_from: date | None = None,
    force: bool = False,
    effectiveness: float = 0.30,
    top_share: float = 0.10,
    cost_per_contact: float = 2.0,
    incentive_cost: float = 10.0,
    value_months: float = 6.0,
    default_monthly_revenue: float = 12.0,
    shap_sample: int = 2_000,
    leaky_control: bool = True,
    register_model: bool = True,
    tracking_uri: str | None = None,
    models_dir: str | None = None,
    episode_id: str | None = None,
) -> dict[str, Any]:
    """Returns a JSON-able summary: the CV and comparison tables, revenue, registry version, gate.

    Split: the last ``test_frac`` of the cutoffs is the held-out test window; up to ``folds``
    rolling-origin folds over every cutoff before it (``gap_days`` >= the horizon between a
    fold's training labels and its evaluation cutoffs). ``directions``: monotone directions
    of source-defined features (a topic's feature spec); ``force``: replace a champion of
    another horizon / feature spec / topic, or one that cannot be scored. ``episode_id``: the
    drift episode this retrain is for (the episode policy passes it with ``gate_from``); the
    gate's outcome is recorded beside the episode's decisions in the data dir's store.
    """
    quiet_environment()
    from pipeline.revenue import Campaign
    from pipeline.training.gate import GatePolicy
    from pipeline.training.report import (
        candidate_description,
        feature_directions,
        run_params,
        run_tags,
        summarize,
    )
    from pipeline.training.specs import load_specs

    s = load_settings(data_dir=data_dir, topic=topic)
    uri = tracking_uri or s.resolved_mlflow_uri
    specs = load_specs(Path(models_dir) if models_dir else PROJECT_ROOT / "models", candidates)
    campaign = Campaign(top_share, effectiveness, cost_per_contact, incentive_cost, value_months)
    policy = GatePolicy(tuple(gate_metrics), gate_tolerance)
    timer = Timer({})

    with timer.stage("snapshots"):
        ds = build_snapshots(str(s.data_dir), s.topic, horizon_days, every_days, start, end, folds, test_frac,
                             gap_days, warmup_days, latest=gate_from is not None)  # fmt: skip
        specs = _applicable(specs, ds.features)  # the topic's feature spec decides which candidates apply
        oracle, leaky_frame = references(ds, str(s.data_dir), s.topic, leaky_control)
        dirs = feature_directions(ds, directions)
    params = {"data_dir": str(s.data_dir), "topic": s.topic, "start": start, "end": end, "horizon_days": horizon_days,
              "every_days": every_days, "folds": folds, "test_frac": test_frac, "gap_days": gap_days,
              "warmup_days": warmup_days, "candidates": [sp.name for sp in specs], "seed": seed, "select_by": select_by,
              "gate_metrics": list(gate_metrics), "gate_tolerance": gate_tolerance, "force": force,
              "campaign": campaign.__dict__, "directions": dirs or {}}
    with timer.stage("logging"):
        exp, parent = start_tracking(uri, run_params(params, ds), run_tags(ds, s.topic))
    work = Path(tempfile.mkdtemp(prefix="churn-train-"))  # here: a run refused above left it behind
    try:
        with timer.stage("cv"):
            cvs = [cross_validate(sp, ds, seed, dirs) for sp in specs]
            selection = select(cvs, select_by)
        with timer.stage("fit"):
            evals = [refit(sp, ds, cv, seed, dirs) for sp, cv in zip(specs, cvs, strict=True)]
            evals += reference_models(ds, oracle, leaky_frame, specs, cvs, seed)
        for e in evals:
            e.info["y_test"] = ds.part("test")["label"].to_numpy()
        best = next(e for e in evals if e.name == selection.chosen)
        main_xgb = next((e for e in evals if e.role == "candidate" and e.kind == "xgboost"), None)
        with timer.stage("evaluate"):
            versus = compare_on_test(main_xgb, evals, seed) if main_xgb is not None else {}
            rev = revenue(best, ds, campaign, default_monthly_revenue)
        with timer.stage("shap"):
            shap = explain(main_xgb, ds, str(work / "shap"), shap_sample, seed) if main_xgb is not None else None
        if shap is not None:
            main_xgb.info |= {"shap_seconds": shap.seconds, "shap_rows_per_second": shap.rows_per_second}
        with timer.stage("logging"):
            logged = {e.name: log_run(exp, parent, e, candidate_params(e, specs), ds, seed,
                                      candidate_description(e, ds, _about(e, specs), e.name == selection.chosen,
                                                            selection.message),
                                      str(shap.directory) if shap and e is main_xgb else None) for e in evals}
            version, decision = None, None
            if register_model:
                version = register(best, ds, logged[best.name], parent, s.topic, selection)
                decision = gate(version, best, ds, policy, _who(), force, seed, gate_from)
                if episode_id:
                    record_gate_outcome(s.resolved_store_url, episode_id, version, decision, end, _run_ref(parent))
            log_summary(parent, evals, selection, rev, versus, decision, version, timer.seconds, register_model,
                        gate_window(ds, gate_from))
    except BaseException:
        from pipeline.training.tracking import end_run

        end_run(parent, "FAILED")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = summarize(ds, evals, selection, rev, campaign, versus, main_xgb, shap, version, decision, timer.seconds,
                       gate_window=gate_window(ds, gate_from), parent_run_id=parent, experiment_id=exp, tracking_uri=uri)
    from pipeline.training.report import final_line

    _logger().info("%s", final_line(result))  # the run log ends with what the gate decided
    return result


def candidate_params(ev, specs) -> dict[str, Any]:
    """The run's parameters: model kind, feature count, the spec's hyperparameters (the
    description is the run's note, the feature list is in the logged model's signature)."""
    sp = next((x for x in specs if x.name == ev.name), None)
    # hyperparameters under spec.: MLflow's compare view plots the first three differing
    # parameters by name, which are then calibration, candidate and kind
    return {"candidate": ev.name, "kind": ev.kind, "role": ev.role, "calibration": ev.info.get("calibration", "-"),
            "n_features": len(ev.model.features) if ev.model is not None else "-",
            **{f"spec.{k}": v for k, v in (sp.params if sp else {}).items()},
            **{f"spec.adapted.{k}": v for k, v in ev.info.get("adapted", {}).items()}}


def _about(ev, specs) -> str:
    sp = next((x for x in specs if x.name == ev.name), None)
    return sp.description if sp else {"oracle": "the simulator's true hazard: the best any model could do",
                                      "leaky": "control fitted on features after the label window: must look "
                                               "too good"}.get(ev.name, "")


def _who() -> str:
    """Who promoted: the Prefect flow run if there is one, else the OS user."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    user = getpass.getuser()
    if ctx is not None and ctx.flow_run is not None:
        return f"{user} via prefect flow run {ctx.flow_run.name} ({ctx.flow_run.id})"
    return user
