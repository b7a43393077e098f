"""``benchmarks/<name>.py`` for the tests: the folder is not an installed package, so the
tests load it from the checkout (once per module name, shared by every test file)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    """``benchmarks.<name>``, with ``benchmarks`` registered as the checkout's package so
    the modules' own ``from benchmarks.x import y`` resolve to the same files."""
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", ROOT / "benchmarks" / "__init__.py",
            submodule_search_locations=[str(ROOT / "benchmarks")],
        )  # fmt: skip
        pkg = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["benchmarks"] = pkg
        spec.loader.exec_module(pkg)  # type: ignore[union-attr]
    return importlib.import_module(f"benchmarks.{name}")
