from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.explain import global_importance, top_reasons, write_report
from pipeline.training.fit import fit_candidate
from pipeline.training.specs import load_specs


def test_top_reasons_by_hand() -> None:
    contribs = pd.DataFrame({"a": [0.5, -0.1], "b": [0.2, 0.3], "c": [-0.4, -0.3], "bias": [-2.0, -2.0]})
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]})
    r = top_reasons(contribs, X, k=2)
    assert r["reason_1"].tolist() == ["a", "b"]
    assert r["value_1"].tolist() == [1.0, 4.0]
    assert r["reason_2"].tolist()[0] == "b"
    assert r["reason_2"].tolist()[1] is None  # only one feature pushes user 2's risk up
    imp = global_importance(contribs)
    assert imp["feature"].tolist() == ["c", "a", "b"]  # mean |SHAP| 0.35, 0.3, 0.25


def test_report_files_and_shap_adds_up(snapshots, tmp_path) -> None:
    df, feats = snapshots
    spec = next(s for s in load_specs(PROJECT_ROOT / "models") if s.name == "xgboost")
    m = fit_candidate(spec, df[df.split == "train"], df[df.split == "val"], feats, seed=0)
    test = df[df.split == "test"]
    scores = m.predict_proba(test)
    rep = write_report(m, test, scores, tmp_path, ids=test[["user_id", "cutoff"]], sample=300, top_users=20,
                       dependence=2)
    names = {p.name for p in rep.files}
    assert {"shap_beeswarm.png", "shap_importance.png", "report.md", "report.html",
            "shap_importance.parquet", "top_risk_reasons.csv"} <= names
    assert sum(n.startswith("shap_dependence_") for n in names) == 2
    assert len(rep.reasons) == 20 and rep.reasons["churn_probability"].is_monotonic_decreasing
    assert rep.reasons["user_id"].iloc[0] == test["user_id"].iloc[int(np.argmax(scores))]
    assert "data:image/png;base64" in (tmp_path / "report.html").read_text()
    assert rep.sample_rows == 300 and rep.rows_per_second > 0
    assert set(rep.importance["feature"]) == set(m.features)
    assert rep.importance["share"].sum() == pytest.approx(1.0)
