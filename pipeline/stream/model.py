"""The champion as the workers see it: a local export, a pointer file, a fast scorer.

Only the supervisor talks to MLflow (:mod:`pipeline.stream.champion`). When the
``champion`` alias points at a new version it exports that model into
``<data_dir>/stream/<group>/models/v<version>/`` (native formats: XGBoost UBJ, sklearn
via skops; plus ``meta.json``) and atomically rewrites the pointer ``champion.json``.
Workers check the pointer between batches and switch without stopping; they never
import MLflow (it would cost each worker ~2 s and ~150 MB).

Feature-set versioning: every export carries the feature-set version the model was
trained with: the version (content hash) of its topic's feature spec
(:mod:`pipeline.features.spec`; the simulator's is the registry's ``FEATURE_SET_VERSION``).
:func:`load_export` refuses, with :class:`~pipeline.errors.ModelMismatchError` naming both
versions, a model whose feature spec differs from the one the running engine computes
for its topic.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelMismatchError, StreamError
from pipeline.features.spec import DEFAULT_SPEC, FeatureSpec

META = "meta.json"


@dataclass(frozen=True)
class ModelRef:
    """What the pointer file says: which version to score with, and where it is."""

    version: str
    path: str  # export directory
    feature_set_version: str
    name: str = "model"
    kind: str = "xgboost"
    # the champion's training base rate (what "3x the base rate" multiplies; pipeline.highrisk)
    base_rate: float | None = None
    base_rate_source: str = ""
    # its label horizon (the registry's horizon_days tag): how long a drift retrain waits
    # for post-onset labels (pipeline.drift.config.DriftConfig.after_days); None: unknown
    horizon_days: int | None = None


def check_feature_set(
    version: str, model_feature_set: str, features: tuple[str, ...] = (), spec: FeatureSpec = DEFAULT_SPEC
) -> None:
    """Raise ``ModelMismatchError`` (one line) unless the model was trained on ``spec``, the
    feature spec of the stream's topic (the simulator's by default)."""
    missing = [f for f in features if f not in spec.engine_columns]
    if model_feature_set != spec.version or missing:
        extra = (
            f" (and it needs feature(s) {missing[:5]} the engine does not compute)" if missing else ""
        )
        topic = f"topic's feature spec ({len(spec.actions)} declared actions)" if spec.actions else "feature set"
        raise ModelMismatchError(
            f"refusing champion churn v{version}: it was trained on feature set "
            f"{model_feature_set or '(untagged)'}, but this stream computes the {topic} "
            f"{spec.version}{extra}. Retrain on this topic's features (`churn train`, or "
            "`prefect deployment run train/weekly`) so the champion matches, or run the code "
            "and import that trained it."
        )


def export_model(
    model: Any, version: str, feature_set_version: str, models_dir: Path, source: str = "",
    base_rate: float | None = None, base_rate_source: str = "", horizon_days: int | None = None,
) -> ModelRef:
    """Write ``model`` (a :class:`pipeline.training.models.ChurnModel`) for the workers.

    ``base_rate``: the churn rate of its training labels (default: the model's own
    ``base_rate`` attribute, if it has one), recorded for relative high-risk rules."""
    if base_rate is None and getattr(model, "base_rate", None) is not None:
        base_rate, base_rate_source = float(model.base_rate), base_rate_source or "training base rate"
    from pipeline.training.models import SklearnModel, XGBoostModel, unwrap

    model, calibrator = unwrap(model)  # native model + calibration map (applied by ScoringModel)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / f"v{version}"
    tmp = models_dir / f".v{version}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        if isinstance(model, XGBoostModel):
            model.booster.save_model(tmp / "model.ubj")
        elif isinstance(model, SklearnModel):
            import skops.io as sio

            sio.dump(model.pipeline, tmp / "model.skops")
        else:
            raise StreamError(
                f"cannot export a {type(model).__name__}; expected an XGBoost or sklearn churn model"
            )
        ref = ModelRef(str(version), str(final), feature_set_version, model.name, model.kind,
                       base_rate, base_rate_source if base_rate is not None else "", horizon_days)
        doc = asdict(ref) | {"features": list(model.features), "source": source,
                             "calibration": calibrator.to_dict() if calibrator is not None else None}
        (tmp / META).write_text(json.dumps(doc, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ref


def publish(pointer: Path, ref: ModelRef) -> None:
    """Atomically point the workers at ``ref``."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(asdict(ref), indent=1))
    os.replace(tmp, pointer)


def read_pointer(pointer: Path) -> ModelRef | None:
    try:
        doc = json.loads(pointer.read_text())
        # fields a newer supervisor added are ignored (hosts of two versions during an upgrade)
        return ModelRef(**{k: v for k, v in doc.items() if k in ModelRef.__dataclass_fields__})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise StreamError(
            f"champion pointer {pointer} is unreadable ({exc}); delete it, the "
            "supervisor rewrites it from the registry"
        ) from None


def champion_base_rate(pointer: Path) -> tuple[float | None, str, str | None]:
    """(base rate, its source, version) of the champion the workers follow; (None, "", None)
    without a pointer. For readers that do not talk to MLflow (closing report, dashboard)."""
    try:
        ref = read_pointer(pointer)
    except StreamError:
        return None, "", None
    if ref is None:
        return None, "", None
    if ref.base_rate is None:  # a pointer from an older supervisor: the export's meta may say
        try:
            doc = json.loads((Path(ref.path) / META).read_text())
        except (OSError, ValueError):
            doc = {}
        if doc.get("base_rate") is not None:
            return float(doc["base_rate"]), str(doc.get("base_rate_source", "")), ref.version
    return ref.base_rate, ref.base_rate_source, ref.version


class ScoringModel:
    """A loaded champion: ``predict`` and ``contributions`` on engine feature matrices.

    Inputs are the engine's ``FeatureFrame.values`` (all registry columns, float64); the
    model's own columns are picked by index once, here, not by name per batch.
    """

    def __init__(
        self, ref: ModelRef, features: tuple[str, ...], booster: Any = None, pipeline: Any = None,
        calibration: dict | None = None,
        engine_columns: tuple[str, ...] = DEFAULT_SPEC.engine_columns,
        compiled: bool = True,
    ) -> None:
        """``compiled``: score an XGBoost booster with :mod:`pipeline.stream.forest` when it
        reproduces the booster exactly (else, or False, with ``Booster.inplace_predict``)."""
        from pipeline.training.calibrate import from_dict  # numpy only; sklearn only to fit

        self.ref = ref
        self.version = ref.version
        self.base_rate = ref.base_rate
        self.base_rate_source = ref.base_rate_source
        self.features = features
        self.engine_columns = engine_columns  # what FeatureFrame.values holds (the topic's spec)
        self.columns = np.array([engine_columns.index(f) for f in features], dtype=np.intp)
        self.booster = booster
        self.pipeline = pipeline
        self.calibrator = from_dict(calibration)
        self.forest: Any = None
        # which predictor scores this model, and why (the worker logs it once)
        self.predictor = "scikit-learn" if booster is None else "xgboost"
        if booster is not None and compiled:
            self.forest, why = _compile(booster)
            self.predictor = "compiled trees" if self.forest is not None else f"xgboost ({why})"

    def matrix(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values[:, self.columns], dtype=np.float32)

    def predict(self, values: np.ndarray) -> np.ndarray:
        """Calibrated P(churn) per row: one ``inplace_predict`` call per batch for XGBoost."""
        X = self.matrix(values)
        if self.forest is not None:  # the booster's own arithmetic, compiled (checked equal at load)
            return self.calibrator.apply(self.forest.predict(X).astype(np.float64))
        if self.booster is not None:
            return self.calibrator.apply(np.asarray(self.booster.inplace_predict(X), dtype=np.float64))
        import pandas as pd

        raw = self.pipeline.predict_proba(pd.DataFrame(X, columns=list(self.features)))[:, 1]
        return self.calibrator.apply(raw.astype(np.float64))

    def contributions(self, values: np.ndarray, exact: bool = False) -> np.ndarray:
        """Per-feature log-odds contributions (``n x len(features)``, bias dropped).

        XGBoost: ``approx_contribs`` (Saabas: the path's value changes, additive like
        SHAP, ~50x faster here) unless ``exact`` (TreeSHAP); linear models: exact
        ``coef x standardised value``.
        """
        X = self.matrix(values)
        if not exact and self.forest is not None and (c := self.forest.contributions(X)) is not None:
            return c.astype(np.float64)  # compiled, checked equal to XGBoost's at load
        if self.booster is not None:
            xgb = import_xgboost()
            dm = xgb.DMatrix(X, feature_names=list(self.features), nthread=1)
            c = self.booster.predict(dm, pred_contribs=True, approx_contribs=not exact)
            return np.asarray(c[:, :-1], dtype=np.float64)
        import pandas as pd

        z = self.pipeline[:-1].transform(pd.DataFrame(X, columns=list(self.features)))
        return np.asarray(z, dtype=np.float64) * self.pipeline[-1].coef_[0]


def _compile(booster: Any) -> tuple[Any, str]:
    from pipeline.stream.forest import compile_forest

    try:
        return compile_forest(booster)
    except Exception as exc:  # noqa: BLE001 - never a reason not to score: XGBoost's predict stays
        return None, f"not compiled: {type(exc).__name__}: {_first_line(exc)}"


def import_xgboost() -> Any:
    """``import xgboost`` without its scikit-learn wrappers.

    xgboost imports scikit-learn at import time (~2 s, measured: half a worker's start-up)
    only for ``XGBClassifier`` and friends, which the workers never use: they score with
    the native ``Booster``. Hiding sklearn during that one import makes xgboost take its
    documented no-sklearn path; sklearn itself stays importable afterwards (skops models).
    """
    import sys

    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost


def load_export(ref: ModelRef, threads: int = 1, spec: FeatureSpec = DEFAULT_SPEC) -> ScoringModel:
    """Load an export; refuses a model not trained on ``spec``, the topic's feature spec
    (``ModelMismatchError``)."""
    path = Path(ref.path)
    try:
        doc = json.loads((path / META).read_text())
    except (OSError, ValueError) as exc:
        raise StreamError(
            f"model export {path} is unreadable ({exc}); delete it and {path.parent.parent / 'champion.json'}"
            ": the supervisor exports the champion again"
        ) from None
    again = f"delete it and {path.parent.parent / 'champion.json'}: the supervisor exports the champion again"
    try:
        features = tuple(doc["features"])
        if str(doc["version"]) != ref.version:  # the pointer names one version, the files hold another
            raise ValueError(f"it holds churn v{doc['version']}, the pointer says v{ref.version}")
    except (KeyError, TypeError, ValueError) as exc:
        raise StreamError(f"model export {path} does not match its pointer ({exc}); {again}") from None
    check_feature_set(ref.version, doc.get("feature_set_version", ""), features, spec)
    if ref.base_rate is None and doc.get("base_rate") is not None:  # a pointer from an older supervisor
        ref = replace(ref, base_rate=float(doc["base_rate"]), base_rate_source=str(doc.get("base_rate_source", "")))
    cols = spec.engine_columns
    if (path / "model.ubj").exists():
        xgb = import_xgboost()
        booster = xgb.Booster()
        try:
            booster.load_model(path / "model.ubj")
        except xgb.core.XGBoostError as exc:  # torn or overwritten: never score with part of a model
            raise StreamError(f"model export {path / 'model.ubj'} is damaged ({_first_line(exc)}); {again}") from None
        booster.set_param({"nthread": threads})  # one core per worker; OpenMP spin-waits otherwise
        return ScoringModel(ref, features, booster=booster, calibration=doc.get("calibration"), engine_columns=cols,
                            compiled=threads == 1)  # more threads asked for: XGBoost's own predictor
    if (path / "model.skops").exists():
        from pipeline.safe_load import UntrustedModelError, load_skops

        try:  # only the types our logistic pipelines need: never "whatever the file names"
            pipe = load_skops(path / "model.skops")
        except UntrustedModelError as exc:
            raise StreamError(f"model export refused: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a torn/garbage zip: one line, fatal, not a crash loop
            raise StreamError(f"model export {path / 'model.skops'} is damaged ({type(exc).__name__}: "
                              f"{_first_line(exc)}); {again}") from None
        return ScoringModel(ref, features, pipeline=pipe, calibration=doc.get("calibration"), engine_columns=cols)
    raise StreamError(
        f"model export {path} has no model.ubj or model.skops; delete it, the supervisor exports again"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
