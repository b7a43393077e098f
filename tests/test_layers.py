"""The layering stays true: every import arrow between the packages points the allowed way.

    churn/       the app: command line + local stack   -> may import all below
    flows/       Prefect flows and deployments          -> pipeline
    dashboard/   the Streamlit app                      -> pipeline
    pipeline/    the library                            -> nothing of ours above, no orchestrator, no screen

Imports inside functions count too (a lazy import is still a dependency). The rules and the
reasons are in docs/architecture.md; this test is what enforces them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("churn", "flows", "dashboard", "pipeline")
# layer -> top-level modules it must not import (ours and third-party)
FORBIDDEN: dict[str, frozenset[str]] = {
    "pipeline": frozenset({"churn", "flows", "dashboard", "prefect", "streamlit", "plotly"}),
    "flows": frozenset({"churn", "dashboard", "streamlit", "plotly"}),
    "dashboard": frozenset({"churn", "flows", "prefect"}),
    "churn": frozenset(),
}


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path`` (relative ones resolved in ``package``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x / from ..y import z
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


def violations(root: Path) -> list[str]:
    """Every import that breaks :data:`FORBIDDEN`, as ``file:line layer -> module``."""
    bad = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            rel = path.relative_to(root)
            package = ".".join(rel.with_suffix("").parts[:-1]) or layer
            for line, mod in imports_of(path, package):
                top = mod.split(".")[0]
                if top in FORBIDDEN[layer]:
                    bad.append(f"{rel}:{line} {layer} -> {mod}")
    return bad


def test_every_import_points_down_the_layers():
    assert violations(ROOT) == []


def test_the_layers_exist_and_are_scanned():
    for layer in LAYERS:
        assert (ROOT / layer / "__init__.py").exists(), layer
    assert sum(1 for _ in (ROOT / "pipeline").rglob("*.py")) > 50  # the walk sees the library


@pytest.mark.parametrize(("layer", "source", "caught"), [
    ("pipeline", "from flows.train import train\n", "pipeline -> flows.train"),
    ("pipeline", "def f():\n    import prefect.events\n", "pipeline -> prefect.events"),
    ("pipeline", "from churn.cli import main\n", "pipeline -> churn.cli"),
    ("dashboard", "from flows import stream\n", "dashboard -> flows"),
    ("flows", "import dashboard.figures as f\n", "flows -> dashboard.figures"),
    ("flows", "from ...churn import cli\n", "flows -> churn"),
])
def test_a_deliberately_wrong_import_is_caught(tmp_path, layer, source, caught):
    for name in LAYERS:
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "sub" / "__init__.py").write_text("")
    (tmp_path / layer / "sub" / "bad.py").write_text("import numpy\nfrom pipeline import events\n" + source)
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].endswith(caught), found


def test_allowed_imports_pass(tmp_path):
    for name in LAYERS:
        (tmp_path / name).mkdir()
    (tmp_path / "churn" / "a.py").write_text("import flows.train, dashboard.launch, pipeline.events\n")
    (tmp_path / "flows" / "a.py").write_text("import prefect\nfrom pipeline.drift.retrain import RetrainRequest\n")
    (tmp_path / "dashboard" / "a.py").write_text("import streamlit\nfrom pipeline import registry\n")
    (tmp_path / "pipeline" / "a.py").write_text("from . import events\nimport mlflow, evidently\n")
    assert violations(tmp_path) == []
