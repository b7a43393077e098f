"""Which consumer owns which partition: Kafka's range and round-robin assignors, and a
sticky one that moves as few partitions as possible when the group changes size.

All three sort consumer ids (as Kafka sorts member ids) and give every partition to
exactly one consumer; consumers beyond the partition count get nothing (idle).

* :func:`range_assign` (Kafka ``RangeAssignor``): contiguous ranges, the first
  ``P mod K`` consumers one partition more.
* :func:`round_robin_assign` (``RoundRobinAssignor``): partition i to consumer i mod K.
* :func:`sticky_assign` (in the spirit of ``StickyAssignor``): balanced (every consumer
  has floor(P/K) or ceil(P/K) partitions) and, among balanced assignments, one that keeps
  the most partitions where they were: the extra partitions go to the consumers that
  already own the most, each consumer keeps its lowest-numbered partitions up to its
  quota, and only the rest move.

>>> sticky_assign(4, ["a", "b"])
{'a': (0, 1), 'b': (2, 3)}
>>> sticky_assign(4, ["a", "b", "c"], previous={"a": (0, 1), "b": (2, 3)})
{'a': (0, 1), 'b': (2,), 'c': (3,)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pipeline.errors import AutoscaleError

Assignment = dict[str, tuple[int, ...]]


def _inputs(
    partitions: int | Iterable[int], consumers: Sequence[str]
) -> tuple[list[int], list[str]]:
    if isinstance(partitions, int):
        if partitions < 0:
            raise AutoscaleError(f"partitions={partitions}: use a count >= 0")
        parts = list(range(partitions))
    else:
        parts = sorted(partitions)
        if len(set(parts)) != len(parts) or any(not isinstance(p, int) or p < 0 for p in parts):
            raise AutoscaleError(f"partitions {parts}: use distinct ints >= 0")
    if isinstance(consumers, str):
        raise AutoscaleError(f"consumers={consumers!r}: pass a list of consumer ids, not one id")
    members = sorted(consumers)
    if len(set(members)) != len(members) or not all(isinstance(c, str) and c for c in members):
        raise AutoscaleError(f"consumers {members}: use distinct non-empty ids")
    if parts and not members:
        raise AutoscaleError(f"no consumers to assign {len(parts)} partition(s) to")
    return parts, members


def range_assign(partitions: int | Iterable[int], consumers: Sequence[str]) -> Assignment:
    parts, members = _inputs(partitions, consumers)
    out: Assignment = {}
    if not members:
        return out
    per, extra = divmod(len(parts), len(members))
    start = 0
    for i, c in enumerate(members):
        n = per + (1 if i < extra else 0)
        out[c] = tuple(parts[start : start + n])
        start += n
    return out


def round_robin_assign(partitions: int | Iterable[int], consumers: Sequence[str]) -> Assignment:
    parts, members = _inputs(partitions, consumers)
    owned: dict[str, list[int]] = {c: [] for c in members}
    for i, p in enumerate(parts):
        owned[members[i % len(members)]].append(p)
    return {c: tuple(ps) for c, ps in owned.items()}


def sticky_assign(
    partitions: int | Iterable[int],
    consumers: Sequence[str],
    previous: Mapping[str, Iterable[int]] | None = None,
) -> Assignment:
    """A balanced assignment that moves the fewest partitions away from ``previous``."""
    parts, members = _inputs(partitions, consumers)
    if not members:
        return {}
    valid = set(parts)
    owner: dict[int, str] = {}
    for c, ps in sorted((previous or {}).items()):
        if c not in members:
            continue  # a consumer that left: its partitions are free
        for p in ps:
            if p in valid and p not in owner:  # first claim wins on a corrupt previous
                owner[p] = c
    owned = {c: sorted(p for p, o in owner.items() if o == c) for c in members}
    per, extra = divmod(len(parts), len(members))
    by_owned = sorted(members, key=lambda c: (-len(owned[c]), c))
    quota = {c: per + (1 if i < extra else 0) for i, c in enumerate(by_owned)}
    keep = {c: owned[c][: quota[c]] for c in members}
    kept = {p for ps in keep.values() for p in ps}
    free = iter(p for p in parts if p not in kept)
    out: Assignment = {}
    for c in members:
        mine = keep[c] + [next(free) for _ in range(quota[c] - len(keep[c]))]
        out[c] = tuple(sorted(mine))
    return out


def moved(before: Mapping[str, Iterable[int]], after: Mapping[str, Iterable[int]]) -> set[int]:
    """Partitions whose owner differs between two assignments (new ones included)."""
    was = {p: c for c, ps in before.items() for p in ps}
    now = {p: c for c, ps in after.items() for p in ps}
    return {p for p, c in now.items() if was.get(p) != c}
