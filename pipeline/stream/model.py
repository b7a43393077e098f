"""The champion as the workers see it: a local export, a pointer file, a fast scorer.

Only the supervisor talks to MLflow (:mod:`pipeline.stream.champion`). When the
``champion`` alias points at a new version it exports that model into
``<data_dir>/stream/<group>/models/v<version>/`` (native formats: XGBoost UBJ, sklearn
via skops; plus ``meta.json``) and atomically rewrites the pointer ``champion.json``.
Workers check the pointer between batches and switch without stopping; they never
import MLflow (it would cost each worker ~2 s and ~150 MB).

Feature-set versioning: every export carries the feature-set version (hash of the
feature registry) the model was trained with. :func:`load_export` refuses, with
:class:`~pipeline.errors.ModelMismatchError` naming both versions, a model whose
feature set the running engine does not compute.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ModelMismatchError, StreamError
from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION

META = "meta.json"


@dataclass(frozen=True)
class ModelRef:
    """What the pointer file says: which version to score with, and where it is."""

    version: str
    path: str  # export directory
    feature_set_version: str
    name: str = "model"
    kind: str = "xgboost"


def check_feature_set(version: str, model_feature_set: str, features: tuple[str, ...] = ()) -> None:
    """Raise ``ModelMismatchError`` unless the engine computes the model's feature set."""
    missing = [f for f in features if f not in FEATURE_NAMES]
    if model_feature_set != FEATURE_SET_VERSION or missing:
        extra = (
            f" (and it needs feature(s) {missing} the engine does not compute)" if missing else ""
        )
        raise ModelMismatchError(
            f"refusing champion churn v{version}: it was trained on feature set "
            f"{model_feature_set or '(untagged)'}, but this stream's feature engine computes feature set "
            f"{FEATURE_SET_VERSION}{extra}. Retrain on the current features (`churn train`, or "
            "`prefect deployment run train/weekly`) so the champion matches, or run the code "
            "version that trained it."
        )


def export_model(
    model: Any, version: str, feature_set_version: str, models_dir: Path, source: str = ""
) -> ModelRef:
    """Write ``model`` (a :class:`pipeline.training.models.ChurnModel`) for the workers."""
    from pipeline.training.models import SklearnModel, XGBoostModel

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
        ref = ModelRef(str(version), str(final), feature_set_version, model.name, model.kind)
        doc = asdict(ref) | {"features": list(model.features), "source": source}
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
        return ModelRef(**doc)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise StreamError(
            f"champion pointer {pointer} is unreadable ({exc}); delete it, the "
            "supervisor rewrites it from the registry"
        ) from None


class ScoringModel:
    """A loaded champion: ``predict`` and ``contributions`` on engine feature matrices.

    Inputs are the engine's ``FeatureFrame.values`` (all registry columns, float64); the
    model's own columns are picked by index once, here, not by name per batch.
    """

    def __init__(
        self, ref: ModelRef, features: tuple[str, ...], booster: Any = None, pipeline: Any = None
    ) -> None:
        self.ref = ref
        self.version = ref.version
        self.features = features
        self.columns = np.array([FEATURE_NAMES.index(f) for f in features], dtype=np.intp)
        self.booster = booster
        self.pipeline = pipeline

    def matrix(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values[:, self.columns], dtype=np.float32)

    def predict(self, values: np.ndarray) -> np.ndarray:
        """P(churn) per row: one ``inplace_predict`` call per batch for XGBoost."""
        X = self.matrix(values)
        if self.booster is not None:
            return np.asarray(self.booster.inplace_predict(X), dtype=np.float64)
        import pandas as pd

        return self.pipeline.predict_proba(pd.DataFrame(X, columns=list(self.features)))[
            :, 1
        ].astype(np.float64)

    def contributions(self, values: np.ndarray, exact: bool = False) -> np.ndarray:
        """Per-feature log-odds contributions (``n x len(features)``, bias dropped).

        XGBoost: ``approx_contribs`` (Saabas: the path's value changes, additive like
        SHAP, ~50x faster here) unless ``exact`` (TreeSHAP); linear models: exact
        ``coef x standardised value``.
        """
        X = self.matrix(values)
        if self.booster is not None:
            xgb = import_xgboost()
            dm = xgb.DMatrix(X, feature_names=list(self.features), nthread=1)
            c = self.booster.predict(dm, pred_contribs=True, approx_contribs=not exact)
            return np.asarray(c[:, :-1], dtype=np.float64)
        import pandas as pd

        z = self.pipeline[:-1].transform(pd.DataFrame(X, columns=list(self.features)))
        return np.asarray(z, dtype=np.float64) * self.pipeline[-1].coef_[0]


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


def load_export(ref: ModelRef, threads: int = 1) -> ScoringModel:
    """Load an export; refuses a feature-set mismatch (``ModelMismatchError``)."""
    path = Path(ref.path)
    try:
        doc = json.loads((path / META).read_text())
    except (OSError, ValueError) as exc:
        raise StreamError(
            f"model export {path} is unreadable ({exc}); delete it and {path.parent.parent / 'champion.json'}"
            ": the supervisor exports the champion again"
        ) from None
    features = tuple(doc["features"])
    check_feature_set(ref.version, doc.get("feature_set_version", ""), features)
    if (path / "model.ubj").exists():
        xgb = import_xgboost()
        booster = xgb.Booster()
        booster.load_model(path / "model.ubj")
        booster.set_param({"nthread": threads})  # one core per worker; OpenMP spin-waits otherwise
        return ScoringModel(ref, features, booster=booster)
    if (path / "model.skops").exists():
        from pipeline.safe_load import UntrustedModelError, load_skops

        try:  # only the types our logistic pipelines need: never "whatever the file names"
            pipe = load_skops(path / "model.skops")
        except UntrustedModelError as exc:
            raise StreamError(f"model export refused: {exc}") from None
        return ScoringModel(ref, features, pipeline=pipe)
    raise StreamError(
        f"model export {path} has no model.ubj or model.skops; delete it, the supervisor exports again"
    )
