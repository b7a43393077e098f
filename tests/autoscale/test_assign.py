"""Partition assignors: Kafka's range and round-robin, and the minimal-movement sticky one."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.autoscale import moved, range_assign, round_robin_assign, sticky_assign
from pipeline.errors import AutoscaleError


@pytest.mark.parametrize(
    ("assign", "partitions", "consumers", "want"),
    [
        (range_assign, 7, ["c1", "c0", "c2"], {"c0": (0, 1, 2), "c1": (3, 4), "c2": (5, 6)}),
        (range_assign, 2, ["a", "b", "c"], {"a": (0,), "b": (1,), "c": ()}),
        (round_robin_assign, 7, ["c1", "c0", "c2"], {"c0": (0, 3, 6), "c1": (1, 4), "c2": (2, 5)}),
        (round_robin_assign, [3, 9, 4], ["x"], {"x": (3, 4, 9)}),
        (sticky_assign, 5, ["b", "a"], {"a": (0, 1, 2), "b": (3, 4)}),
        (sticky_assign, 0, ["a"], {"a": ()}),
    ],
)
def test_assignors_table(assign, partitions, consumers, want):
    assert assign(partitions, consumers) == want


def test_sticky_growing_and_shrinking_moves_little():
    a = sticky_assign(8, ["w0", "w1"])
    assert a == {"w0": (0, 1, 2, 3), "w1": (4, 5, 6, 7)}
    b = sticky_assign(8, ["w0", "w1", "w2"], previous=a)
    assert b == {"w0": (0, 1, 2), "w1": (4, 5, 6), "w2": (3, 7)}
    assert moved(a, b) == {3, 7}  # only what the new consumer takes
    c = sticky_assign(8, ["w0", "w2"], previous=b)  # w1 died
    assert moved(b, c) == {4, 5, 6} and c == {"w0": (0, 1, 2, 4), "w2": (3, 5, 6, 7)}
    assert sticky_assign(8, ["w0", "w2"], previous=c) == c  # stable


@pytest.mark.parametrize(
    ("partitions", "consumers", "match"),
    [
        (-1, ["a"], "count >= 0"),
        ([1, 1], ["a"], "distinct ints"),
        (3, ["a", "a"], "distinct non-empty ids"),
        (3, [], "no consumers"),
        (3, "abc", "not one id"),
    ],
)
def test_bad_inputs(partitions, consumers, match):
    with pytest.raises(AutoscaleError, match=match):
        sticky_assign(partitions, consumers)


def _check_balanced(assignment: dict[str, tuple[int, ...]], partitions: int) -> None:
    every = sorted(p for ps in assignment.values() for p in ps)
    assert every == list(range(partitions))  # each partition exactly once
    sizes = [len(ps) for ps in assignment.values()]
    assert max(sizes) - min(sizes) <= 1


def _fewest_moves(partitions: int, consumers: list[str], previous: dict) -> int:
    """Brute force over every balanced assignment (small cases only)."""
    was = {p: c for c, ps in previous.items() for p in ps}
    best = partitions
    per, extra = divmod(partitions, len(consumers))
    for owners in itertools.product(consumers, repeat=partitions):
        sizes = sorted(owners.count(c) for c in consumers)
        if sizes != sorted([per] * (len(consumers) - extra) + [per + 1] * extra):
            continue
        best = min(best, sum(1 for p, c in enumerate(owners) if was.get(p) != c))
    return best


names = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=150, deadline=None)
@given(
    partitions=st.integers(0, 6),
    before=st.lists(names, min_size=1, max_size=3, unique=True),
    after=st.lists(names, min_size=1, max_size=3, unique=True),
)
def test_sticky_is_balanced_and_moves_the_fewest(partitions, before, after):
    prev = sticky_assign(partitions, before)
    nxt = sticky_assign(partitions, after, previous=prev)
    _check_balanced(nxt, partitions)
    assert len(moved(prev, nxt)) == _fewest_moves(partitions, sorted(after), prev)
    assert sticky_assign(partitions, after, previous=nxt) == nxt


@settings(max_examples=100, deadline=None)
@given(partitions=st.integers(0, 64), k=st.integers(1, 16))
def test_range_and_round_robin_are_balanced(partitions, k):
    consumers = [f"c{i:02d}" for i in range(k)]
    for assign in (range_assign, round_robin_assign, sticky_assign):
        _check_balanced(assign(partitions, consumers), partitions)
