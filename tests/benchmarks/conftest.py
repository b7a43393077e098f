"""``benchmarks.run.main`` turns Python's bytecode cache on for the benchmark processes
(it unsets ``PYTHONDONTWRITEBYTECODE``): restore both after each test."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(autouse=True)
def _keep_bytecode_setting(monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)
    value = os.environ.get("PYTHONDONTWRITEBYTECODE")
    if value is not None:
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", value)  # restored if main pops it
    yield
