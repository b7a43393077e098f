from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.errors import SpecError
from pipeline.training.specs import load_specs, parse_spec


def test_project_candidates_parse() -> None:
    specs = {s.name: s for s in load_specs(PROJECT_ROOT / "models")}
    assert {"xgboost", "logistic", "rule"} <= set(specs)
    assert specs["xgboost"].early_stopping is not None
    assert specs["rule"].features == ("days_since_last_session",)


def test_adding_a_candidate_is_adding_a_file(tmp_path: Path) -> None:
    (tmp_path / "shallow_trees.yaml").write_text("kind: xgboost\nparams: {max_depth: 2}\n")
    (tmp_path / "baseline.yml").write_text("kind: logistic\n")
    assert [s.name for s in load_specs(tmp_path)] == ["baseline", "shallow_trees"]
    assert [s.name for s in load_specs(tmp_path, only=["baseline"])] == ["baseline"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"kind": "forest"}, "kind must be one of"),
    ({"kind": "xgboost", "parms": {}}, "unknown key"),
    ({"kind": "xgboost", "params": {"max_deph": 3}}, "unknown xgboost param"),
    ({"kind": "rule", "features": ["a", "b"]}, "exactly one feature"),
    ({"kind": "logistic", "monotone": {"a": 1}}, "xgboost only"),
    ({"kind": "xgboost", "monotone": {"a": 2}}, r"\+1"),
    ({"kind": "logistic", "early_stopping": {"rounds": 5}}, "xgboost only"),
    ({"kind": "xgboost", "early_stopping": {"rounds": 0}}, "rounds must be"),
    ({"kind": "xgboost", "features": "some"}, "features must be"),
])
def test_bad_specs_say_what_and_where(raw: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as exc:
        parse_spec(raw, "cand", "models/cand.yaml")
    assert "models/cand.yaml" in str(exc.value)


def test_unknown_features_are_named() -> None:
    spec = parse_spec({"kind": "logistic", "features": ["a", "zz"]}, "c")
    with pytest.raises(SpecError, match="zz"):
        spec.resolve_features(["a", "b"])
    assert parse_spec({"kind": "logistic", "exclude": ["b"]}, "c").resolve_features(["a", "b", "c"]) == ("a", "c")


def test_unknown_candidate_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: logistic\n")
    (tmp_path / "b.yaml").write_text("kind: logistic\nname: a\n")
    with pytest.raises(SpecError, match="defined twice"):
        load_specs(tmp_path)
    (tmp_path / "b.yaml").unlink()
    with pytest.raises(SpecError, match="unknown candidate"):
        load_specs(tmp_path, only=["nope"])
    with pytest.raises(SpecError, match="no candidate directory"):
        load_specs(tmp_path / "missing")
