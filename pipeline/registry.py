"""MLflow helpers: the tracking store, logging and loading churn models, the champion gate.

* :func:`configure` points MLflow at a store (default SQLite under ``mlruns/``, artifacts
  beside it) and creates the experiment; nothing happens at import time.
* :func:`log_model` logs a fitted model in its native, non-pickle format (XGBoost UBJ;
  sklearn via skops), with a signature, an input example, the feature registry and a
  reference sample of training features inside the model (``extra_files/``), so the
  stream's drift checks read them from the same ``models:/churn@champion``.
* :func:`load_model` returns a :class:`~pipeline.training.models.ChurnModel` that gives
  probabilities (pyfunc on an sklearn classifier would give labels), calibrated when the
  model was logged with a calibration map (model metadata ``calibration``; the native
  flavour underneath, and so a plain ``mlflow.pyfunc`` load, stays uncalibrated).
* :func:`register` adds a version of ``churn`` with alias ``challenger``;
  :func:`run_gate` refuses a champion of another horizon / feature spec / topic, scores
  the champion on the challenger's test window (failing closed on any error), records the
  decision, both scores and their paired-bootstrap differences as version tags and moves
  ``champion`` if the gate says so.
* Alias history: MLflow keeps only the current alias. Every promotion is appended as a
  JSON event to the promoted version's ``champion.promotions`` tag (in the registry
  itself, so it works against a tracking server too); :func:`alias_history` rebuilds
  who was champion when, and why.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from pipeline.errors import ChurnError, ModelUnreadableError, RegistryError
from pipeline.evaluation import metrics as score_metrics
from pipeline.safe_load import SKOPS_TRUSTED_TYPES
from pipeline.training.gate import GateDecision, GatePolicy, decide
from pipeline.training.models import (
    CalibratedModel,
    ChurnModel,
    SklearnModel,
    XGBoostModel,
    matrix,
    unwrap,
)

MODEL_NAME: Final = "churn"
EXPERIMENT: Final = "churn-train"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
PROMOTIONS_TAG: Final = "champion.promotions"
FEATURE_SET_TAG: Final = "feature_set_version"
HORIZON_TAG: Final = "horizon_days"
TOPIC_TAG: Final = "topic"
BASE_RATE_TAG: Final = "train.base_rate"  # churn rate of the training rows: "high risk" is relative to it
CALIBRATION_KEY: Final = "calibration"  # model metadata: the calibration map (pipeline.training.calibrate)
# MLflow 3's UI opens an experiment on the GenAI overview (traces) unless it is marked as model
# training (the UI's enum: custom_model_development / genai_development); the primary metric
# is what its run list and charts lead with.
EXPERIMENT_TAGS: Final = {
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.experiment.primaryMetric.name": "test_roc_auc",
    "mlflow.experiment.primaryMetric.greaterIsBetter": "true",
    "mlflow.note.content": "Churn model training: one parent run per `churn train` / train deployment run, one "
                           "child run per candidate (and the oracle / leaky references). Compare the child runs: "
                           "test_roc_auc, test_pr_auc and test_lift_at_10pct are measured on the same held-out test "
                           "window. The registered version's description says what the champion gate decided.",
}


def configure(tracking_uri: str, experiment: str = EXPERIMENT) -> str:
    """Use ``tracking_uri`` in this process; return the experiment id (created if new).

    For a SQLite store the artifacts go to ``<db dir>/artifacts`` (an explicit location,
    otherwise MLflow fixes it relative to the working directory of the first run).
    """
    import mlflow
    from sqlalchemy.exc import SQLAlchemyError

    from pipeline.mlflow_store import check_readable

    check_readable(tracking_uri)  # a file that is not an MLflow database: one line, not tracebacks
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        artifact_location = (db.parent / "artifacts").resolve().as_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            try:
                return mlflow.create_experiment(experiment, artifact_location=artifact_location, tags=EXPERIMENT_TAGS)
            except mlflow.exceptions.MlflowException:  # created concurrently
                exp = mlflow.get_experiment_by_name(experiment)
        client = mlflow.MlflowClient()
        for k, v in EXPERIMENT_TAGS.items():  # an experiment made before these tags existed gets them too
            if exp.tags.get(k) != v:
                client.set_experiment_tag(exp.experiment_id, k, v)
        return exp.experiment_id
    except (mlflow.exceptions.MlflowException, SQLAlchemyError) as exc:
        raise RegistryError(f"MLflow tracking store {tracking_uri} is unusable: {_first_line(exc)}; "
                            "check CHURN_MLFLOW_TRACKING_URI") from None


def _pip_requirements(kind: str) -> list[str]:
    import sklearn
    import xgboost

    reqs = [f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]
    if kind == "xgboost":
        return [f"xgboost=={xgboost.__version__}", *reqs]
    import skops

    return [f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}", *reqs]


def log_model(
    model: ChurnModel,
    example: pd.DataFrame,
    reference: pd.DataFrame,
    feature_registry: Mapping[str, Any],
    feature_set_version: str,
) -> Any:
    """Log ``model`` into the active run as ``model``; return MLflow's ``ModelInfo``."""
    import mlflow
    from mlflow.models import infer_signature

    X = matrix(example, model.features).astype(np.float64)
    metadata = {"candidate": model.name, "kind": model.kind, "features": list(model.features),
                FEATURE_SET_TAG: feature_set_version}
    native, calibrator = unwrap(model)
    if calibrator is not None:
        metadata[CALIBRATION_KEY] = calibrator.to_dict()
    with tempfile.TemporaryDirectory() as tmp:
        reg_path = Path(tmp) / "feature_registry.json"
        reg_path.write_text(json.dumps(dict(feature_registry), indent=2, default=str))
        ref_path = Path(tmp) / "reference.parquet"
        matrix(reference, model.features).to_parquet(ref_path, index=False)
        common = {
            "name": "model", "input_example": X.head(5), "metadata": metadata,
            "pip_requirements": _pip_requirements(model.kind), "extra_files": [str(reg_path), str(ref_path)],
        }
        # The signature shows calibrated probabilities (what load_model returns); the native
        # flavour underneath holds the uncalibrated model, the map is in the metadata.
        if isinstance(native, XGBoostModel):
            sig = infer_signature(X, model.predict_proba(X))
            return mlflow.xgboost.log_model(native.booster, model_format="ubj", signature=sig, **common)
        if isinstance(native, SklearnModel):
            sig = infer_signature(X, native.pipeline.predict_proba(X.astype(np.float32)))
            return mlflow.sklearn.log_model(native.pipeline, serialization_format="skops",
                                            skops_trusted_types=list(SKOPS_TRUSTED_TYPES), pyfunc_predict_fn="predict_proba",
                                            signature=sig, **common)
    raise RegistryError(f"cannot log model of type {type(model).__name__}; expected an XGBoost or sklearn model")


def load_model(uri: str) -> ChurnModel:
    """Load ``uri`` (e.g. ``models:/churn@champion``) as a model that returns probabilities.

    Calibrated when the model was logged with a calibration map (every model the train
    flow registers): ``predict_proba`` is then the calibrated probability. Files that
    cannot be read (a damaged or incomplete artifact) are a :class:`ModelUnreadableError`
    naming the version, not the parser's traceback.
    """
    info = _model_info(uri)
    with tempfile.TemporaryDirectory() as tmp:
        return _model_from(uri, info, _download(uri, tmp))


def _model_info(uri: str) -> Any:
    import mlflow

    try:
        return mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as exc:
        raise RegistryError(f"cannot load {uri}: {exc}") from None


def _download(uri: str, tmp: str) -> Path:
    """The model's artifacts (model files, extra files) in ``tmp``, downloaded once."""
    import mlflow

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
    except mlflow.exceptions.MlflowException as exc:
        raise RegistryError(f"cannot download {uri}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message ("" if it has none): MLflow's and the parsers'
    messages can run to pages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _unreadable(uri: str, what: str, exc: Exception) -> ModelUnreadableError:
    detail = _first_line(exc)
    return ModelUnreadableError(
        f"{uri}: its {what} cannot be read ({type(exc).__name__}{': ' + detail if detail else ''}); the registered "
        "artifact is damaged or incomplete: register a working version (`churn train`) or point the "
        "'champion' alias back at one")  # fmt: skip


def _model_from(uri: str, info: Any, local: Path) -> ChurnModel:
    """The model of ``info`` from its downloaded artifacts at ``local``."""
    import mlflow

    meta = info.metadata or {}
    name = meta.get("candidate", "model")
    model: ChurnModel
    try:
        if "xgboost" in info.flavors:
            booster = mlflow.xgboost.load_model(str(local))
            feats = tuple(meta.get("features") or booster.feature_names)
            model = XGBoostModel(name, booster, feats, booster.num_boosted_rounds() - 1)
        elif "sklearn" in info.flavors:
            pipe = _load_sklearn(uri, info.flavors["sklearn"], local)
            model = SklearnModel(name, meta.get("kind", "logistic"), pipe, tuple(meta["features"]))
        else:
            raise RegistryError(f"{uri} has flavours {sorted(info.flavors)}; expected xgboost or sklearn")
        if meta.get(CALIBRATION_KEY):
            from pipeline.training.calibrate import from_dict

            model = CalibratedModel(model, from_dict(meta[CALIBRATION_KEY]))
    except ChurnError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises on a damaged file: one clear error
        raise _unreadable(uri, "model files", exc) from exc
    return model


def _load_sklearn(uri: str, flavor: Mapping[str, Any], local: Path) -> Any:
    # not mlflow.sklearn.load_model: that trusts the types listed next to the model (MLmodel),
    # which whoever can write the model can also write; our own allow-list decides instead
    from pipeline.safe_load import UntrustedModelError, load_skops

    if flavor.get("serialization_format") != "skops":
        raise RegistryError(f"{uri} is a {flavor.get('serialization_format')!r} sklearn model; only skops "
                            "models are loaded (pickle runs code on load): retrain it with `churn train`")
    try:
        return load_skops(local / flavor.get("pickled_model", "model.skops"))
    except UntrustedModelError as exc:
        raise RegistryError(f"{uri} refused: {exc}") from None


@dataclass
class Bundle:
    """Everything the stream needs from a registered model."""

    model: ChurnModel
    feature_set_version: str
    feature_registry: dict
    reference: pd.DataFrame


def load_bundle(uri: str) -> Bundle:
    """The model plus its feature registry and reference sample (for drift checks), from
    one download of its artifacts; unreadable files are a :class:`ModelUnreadableError`."""
    info = _model_info(uri)
    meta = info.metadata or {}
    with tempfile.TemporaryDirectory() as tmp:
        local = _download(uri, tmp)
        model = _model_from(uri, info, local)
        extra = local / "extra_files"
        try:
            registry = json.loads((extra / "feature_registry.json").read_text())
            reference = pd.read_parquet(extra / "reference.parquet")
        except Exception as exc:  # noqa: BLE001 - a missing or damaged file: one clear error
            raise _unreadable(uri, "feature registry or reference sample (extra_files)", exc) from exc
    return Bundle(model, str(meta.get(FEATURE_SET_TAG, "")), registry, reference)


def register(model_uri: str, tags: Mapping[str, Any], name: str = MODEL_NAME) -> str:
    """Register ``model_uri`` as a new version of ``name`` with alias ``challenger``."""
    import mlflow
    from mlflow import MlflowClient

    mv = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    MlflowClient().set_registered_model_alias(name, CHALLENGER, mv.version)
    return str(mv.version)


def describe_version(version: str, description: str, name: str = MODEL_NAME) -> None:
    """Set a version's description (Markdown in the MLflow UI): what the gate decided and why."""
    from mlflow import MlflowClient

    MlflowClient().update_model_version(name, str(version), description=description[:60_000])


# MLflow's answers for "no such registered model" and "no such alias": there is no champion
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def champion_version(name: str = MODEL_NAME) -> Any | None:
    """The version the ``champion`` alias points at; None if there is none. A registry that
    does not answer (a server down, an internal error) is a RegistryError, not "no
    champion": the gate must not promote a challenger as the first model because of it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        first = _first_line(exc) or type(exc).__name__
        raise RegistryError(f"the MLflow registry did not answer the champion lookup ({exc.error_code}: "
                            f"{first[:300]})") from exc


def run_gate(
    version: str,
    challenger_metrics: Mapping[str, float],
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    feature_set_version: str,
    now: datetime,
    by: str,
    policy: GatePolicy = GatePolicy(),  # noqa: B008 - frozen default
    name: str = MODEL_NAME,
    *,
    challenger_scores: np.ndarray | None = None,
    force: bool = False,
    seed: int = 0,
    n_boot: int = 200,
    window: str | None = None,
) -> GateDecision:
    """Compare the challenger with the champion like with like, decide, record, move the alias.

    The challenger's horizon and topic come from its own version tags (``horizon_days``,
    ``topic``), its feature spec from ``feature_set_version``; a champion that differs in
    any is refused unless ``force``. Otherwise the champion is scored on the same rows
    (``X_test``: the most recent labelled window); with ``challenger_scores`` the paired
    bootstrap difference of every gate metric is recorded (``gate.diff.<metric>`` tags).
    Any error loading or scoring the champion rejects the challenger (fails closed).
    ``window`` (e.g. ``2026-04-20..2026-05-18``) names the rows both were scored on
    (``gate.window``), so every champion number beside the decision says where it came from.
    """
    from mlflow import MlflowClient

    from pipeline.evaluation import paired_difference
    from pipeline.training.gate import Identity, differences

    client = MlflowClient()
    champ = champion_version(name)
    champ_metrics, unscorable, champ_v, refused, paired = None, None, None, [], {}
    if champ is not None and str(champ.version) != str(version):
        champ_v = str(champ.version)
        mine = client.get_model_version(name, version).tags
        me = Identity.from_tags(mine | {FEATURE_SET_TAG: feature_set_version})
        refused = differences(me, Identity.from_tags(champ.tags))
        if not refused:
            try:
                p_champ = load_model(f"models:/{name}/{champ_v}").predict_proba(X_test)
                champ_metrics = score_metrics(y_test, p_champ)
                if challenger_scores is not None:
                    paired = {m: paired_difference(y_test, challenger_scores, p_champ, m, n_boot, seed)
                              for m in policy.metrics}
            except Exception as exc:  # noqa: BLE001 - any load/score failure rejects, with the reason (fail closed)
                unscorable = f"{type(exc).__name__}: {exc}"
    result = decide(challenger_metrics, champ_metrics, policy, champ_v, unscorable, refused, force, paired)

    tags = {"gate.decision": result.decision, "gate.reason": result.reason, "gate.at": now.isoformat(),
            "gate.by": by, "gate.policy": json.dumps({"metrics": list(policy.metrics), "tolerance": policy.tolerance}),
            "gate.champion_version": champ_v or "", "gate.forced": str(result.forced).lower(),
            "gate.window": window or ""}
    for m, v in result.challenger.items():
        tags[f"gate.challenger.{m}"] = f"{v:.6f}"
    for m, v in (result.champion or {}).items():
        tags[f"gate.champion.{m}"] = f"{v:.6f}"
    for m, d in result.differences.items():
        tags[f"gate.diff.{m}"] = f"{d['diff']:+.6f} [{d['ci_low']:+.6f}, {d['ci_high']:+.6f}]"
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, v[:5000])
    if result.promoted:
        promote(version, result.reason, by, now, name=name, scores=result.challenger)
    return result


def promote(version: str, reason: str, by: str, now: datetime, name: str = MODEL_NAME,
            scores: Mapping[str, float] | None = None) -> None:
    """Point ``champion`` at ``version`` and append the event to the alias history.

    Also the way to roll back by hand: ``promote("3", "rollback: v4 mis-scores", "alice", now)``.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    prev = champion_version(name)
    mv = client.get_model_version(name, version)
    events = json.loads(mv.tags.get(PROMOTIONS_TAG, "[]"))
    events.append({"at": now.isoformat(), "by": by, "reason": reason,
                   "previous": str(prev.version) if prev is not None else None, "scores": dict(scores or {})})
    client.set_model_version_tag(name, version, PROMOTIONS_TAG, json.dumps(events))
    client.set_registered_model_alias(name, CHAMPION, version)


def alias_history(name: str = MODEL_NAME) -> pd.DataFrame:
    """Who was champion when, and why: one row per promotion, oldest first.

    ``until`` is the next promotion's time (empty for the current champion). A champion
    alias moved outside :func:`promote` (e.g. in the MLflow UI) shows up as a last row
    with reason ``alias set outside the gate``.
    """
    from mlflow import MlflowClient

    rows = []
    for mv in MlflowClient().search_model_versions(f"name='{name}'"):
        for e in json.loads(mv.tags.get(PROMOTIONS_TAG, "[]")):
            rows.append({"version": str(mv.version), "since": e["at"], "by": e.get("by"),
                         "reason": e.get("reason"), "previous": e.get("previous"),
                         "scores": json.dumps(e.get("scores", {}))})
    cols = ["version", "since", "until", "by", "reason", "previous", "scores"]
    df = pd.DataFrame(rows, columns=[c for c in cols if c != "until"])
    df = df.sort_values("since", kind="stable").reset_index(drop=True)
    df["until"] = df["since"].shift(-1)
    champ = champion_version(name)
    if champ is not None and (df.empty or df["version"].iloc[-1] != str(champ.version)):
        df.loc[len(df)] = {"version": str(champ.version), "since": None, "until": None, "by": None,
                           "reason": "alias set outside the gate", "previous": None, "scores": "{}"}
    return df[cols]


def gated_versions(tracking_uri: str, name: str = MODEL_NAME) -> list[tuple[str, dict[str, str]]]:
    """``(version, tags)`` of every version the gate decided on, oldest first (read-only)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(tracking_uri=tracking_uri).search_model_versions(f"name='{name}'")
    except MlflowException:
        return []  # no registered model yet
    out = [(str(v.version), dict(v.tags)) for v in found if "gate.decision" in (v.tags or {})]
    return sorted(out, key=lambda x: int(x[0]))
