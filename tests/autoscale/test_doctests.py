"""The examples in the autoscale docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "pipeline.autoscale.policy",
    "pipeline.autoscale.assign",
    "pipeline.autoscale.controller",
    "pipeline.autoscale.alerts",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
