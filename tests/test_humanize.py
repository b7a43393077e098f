"""Compact numbers fit a tile at any magnitude and round-trip to the right order of magnitude."""

from __future__ import annotations

import doctest
import math

from hypothesis import given
from hypothesis import strategies as st

from pipeline import humanize
from pipeline.humanize import count, duration, money

MULT = {"": 1, "k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def test_doctests():
    assert doctest.testmod(humanize).failed == 0


@given(st.floats(min_value=0, max_value=9.99e14, allow_nan=False))
def test_count_is_short_and_close(n):
    text = count(n)
    assert len(text) <= 7, text
    suffix = text[-1] if text[-1] in MULT else ""
    value = float(text[: len(text) - len(suffix)].replace(",", "")) * MULT[suffix]
    assert math.isclose(value, n, rel_tol=0.01, abs_tol=0.05), (n, text)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_duration_is_short(s):
    assert len(duration(s)) <= 12, duration(s)


def test_missing_values_are_a_dash():
    assert count(None) == duration(float("nan")) == money(None) == "-"


def test_units_change_at_their_boundaries():
    assert [duration(x) for x in (59.4, 60, 3599, 3600, 172_799, 172_800)] == [
        "59 s", "1 min", "59 min 59 s", "1 h 00 min", "47 h 59 min", "2 d"]
    assert money(99.5) == "$99.50" and money(100) == "$100" and money(2e6, "GBP") == "GBP 2.00M"
