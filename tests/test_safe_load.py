"""Models load with an explicit allow-list, never "trust whatever the file names" (issue 16 item 14)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from pipeline.errors import StreamError
from pipeline.features.registry import FEATURE_SET_VERSION
from pipeline.safe_load import SKOPS_TRUSTED_TYPES, UntrustedModelError, load_skops
from pipeline.stream.model import export_model, load_export
from pipeline.testing.training import split_by_cutoff, synthetic_snapshots
from pipeline.training.fit import fit_candidate
from pipeline.training.specs import parse_spec


@pytest.fixture(scope="module")
def logistic():
    df, feats = synthetic_snapshots(users=400, cutoffs=3, seed=3)
    df = split_by_cutoff(df)
    model = fit_candidate(parse_spec({"kind": "logistic"}, "logistic"), df[df.split == "train"],
                          df[df.split == "val"], feats, seed=0)  # fmt: skip
    return model, df


def test_our_logistic_pipeline_needs_only_the_allow_list(logistic, tmp_path) -> None:
    model, df = logistic
    ref = export_model(model, "1", FEATURE_SET_VERSION, tmp_path)
    assert set(sio.get_untrusted_types(file=tmp_path / "v1" / "model.skops")) <= set(SKOPS_TRUSTED_TYPES)
    loaded = load_export(ref)
    X = df[list(model.features)].to_numpy(np.float64)[:50]
    want = model.pipeline.predict_proba(pd.DataFrame(X, columns=list(model.features)))[:, 1]
    assert np.allclose(loaded.pipeline.predict_proba(pd.DataFrame(X, columns=list(model.features)))[:, 1], want)


def test_a_model_file_naming_a_function_is_refused_not_loaded(logistic, tmp_path) -> None:
    model, df = logistic
    ref = export_model(model, "2", FEATURE_SET_VERSION, tmp_path)
    # the same export, its pipeline swapped for one that would call os.system on predict
    evil = Pipeline([("x", FunctionTransformer(os.system)), ("lr", LogisticRegression())])
    sio.dump(evil, tmp_path / "v2" / "model.skops")
    with pytest.raises(UntrustedModelError, match=r"posix.system.*retrain"):
        load_skops(tmp_path / "v2" / "model.skops")
    with pytest.raises(StreamError, match=r"model export refused: .*posix.system"):
        load_export(ref)


def test_the_registry_does_not_trust_the_types_listed_next_to_the_model(tmp_path, monkeypatch) -> None:
    """mlflow.sklearn.load_model trusts the MLmodel file's list; whoever can write the model
    can write that list too. registry.load_model decides with our allow-list instead."""
    import mlflow

    from pipeline import registry
    from pipeline.errors import RegistryError

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    registry.configure(f"sqlite:///{tmp_path}/mlflow.db")
    evil = Pipeline([("x", FunctionTransformer(os.system)), ("lr", LogisticRegression())])
    try:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(evil, name="model", serialization_format="skops",
                                            skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(evil)),
                                            metadata={"features": ["a"]}, pip_requirements=["scikit-learn"])  # fmt: skip
        with pytest.raises(RegistryError, match=r"refused: .*posix.system"):
            registry.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(None)
