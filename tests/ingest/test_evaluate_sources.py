"""docs/examples/evaluate_sources.py: the example-source table of docs/import.md, reproducibly."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "docs" / "examples" / "evaluate_sources.py"


@pytest.fixture(scope="module")
def evs():
    spec = importlib.util.spec_from_file_location("evaluate_sources", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def test_write_doc_replaces_only_the_marked_table(evs, tmp_path: Path) -> None:
    doc = tmp_path / "import.md"
    doc.write_text(f"intro\n{evs.START}\n| old | table |\n{evs.END}\noutro\n")
    evs.write_doc("| new | table |\n", "note", doc)
    text = doc.read_text()
    assert "old" not in text and "| new | table |" in text and "note" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert text.index(evs.START) < text.index("| new") < text.index(evs.END)
    doc.write_text("no markers here\n")
    with pytest.raises(RuntimeError, match="lacks the markers"):
        evs.write_doc("| t |\n", "note", doc)


def test_the_shipped_doc_has_the_markers(evs) -> None:
    text = evs.DOC.read_text()
    assert text.count(evs.START) == 1 and text.count(evs.END) == 1


@pytest.mark.slow
def test_quick_run_gives_a_table_with_the_baseline_and_a_learnable_label(evs, prefect_harness, tmp_path) -> None:
    results = evs.run(evs.QUICK, tmp_path, candidates=["logistic", "xgboost"])
    assert [r.source.name for r in results] == ["saas", "shop"]
    for r in results:
        assert r.leaky_auc is not None and r.leaky_auc >= evs.LEAKY_MIN, r.source.name  # the label is learnable
        assert set(r.candidates) == {"logistic", "xgboost"} and r.chosen in r.candidates
        assert r.best_auc == max(c["test_roc_auc"] for c in r.candidates.values())
        assert r.regret >= 0 and r.test_churners > 0 and r.pretest_rows > 0
        # the baseline is the per-action 30-day counts, one per declared action, and nothing else
        assert r.baseline_features == [f"act_{a}_30d" for a in r.declared_actions]
        assert 0.5 < r.baseline_auc < 1
        assert r.versus_baseline["ci_low"] <= r.versus_baseline["diff"] <= r.versus_baseline["ci_high"]
        assert r.cv_table and {"candidate", "fold", "roc_auc"} <= set(r.cv_table[0])
    table = evs.markdown_table(results)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(results)
    cells = [len(line.strip("|").split("|")) for line in lines]
    assert len(set(cells)) == 1  # every row has the header's columns
    assert "plain logistic on per-action 30-day counts" in lines[0] and "leaky control" in lines[0]
    assert re.search(r"\| SaaS .*\| (logistic|xgboost) 0\.\d{3} \|", lines[2])
