"""Test helper shipped with the library: a small champion registered in an MLflow registry.

>>> version = register_tiny_champion("sqlite:////tmp/x/mlflow.db")   # doctest: +SKIP

What stand-alone workers (:mod:`pipeline.stream.host`) fetch: the model, its feature spec
(``feature_registry.json``), its feature-set tag and training base rate, alias ``champion``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd


def register_tiny_champion(tracking_uri: str, model: Any = None, **kw: Any) -> str:
    """Log :func:`pipeline.testing.stream.tiny_model` (or ``model``) to ``tracking_uri``,
    register it and move the ``champion`` alias to it; returns the version."""
    import mlflow

    from pipeline import registry
    from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
    from pipeline.features.spec import DEFAULT_SPEC
    from pipeline.testing.stream import tiny_model

    model = model if model is not None else tiny_model(**kw)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.gamma(1.5, 3.0, (300, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    frame["plan_tier"] = rng.integers(-1, 3, len(frame))
    doc = {"feature_set_version": FEATURE_SET_VERSION, "features": list(model.features),
           "feature_spec": DEFAULT_SPEC.document()}
    experiment = registry.configure(tracking_uri)
    with mlflow.start_run(experiment_id=experiment):
        info = registry.log_model(model, frame.head(5), frame, doc, FEATURE_SET_VERSION)
    tags = {registry.FEATURE_SET_TAG: FEATURE_SET_VERSION, "train.base_rate": repr(float(model.base_rate))}
    version = registry.register(info.model_uri, tags)
    registry.promote(version, "pytest", "pytest", datetime.now(UTC))
    return version
