"""Reading a partition by hand: what ``churn tail --partition P --from OFFSET`` needs.

``--from`` accepts ``earliest``, ``latest``, an absolute offset, or a negative number
meaning "that many records before the end" (clamped to the start).
"""

from __future__ import annotations

from pipeline.errors import LogError
from pipeline.log.base import PartitionLog, Record


def resolve_offset(log: PartitionLog, partition: int, spec: int | str) -> int:
    """Turn a ``--from`` value into an offset of ``partition``."""
    info = log.partition_info(partition)
    if spec == "earliest":
        return info.start_offset
    if spec == "latest":
        return info.end_offset
    try:
        n = int(spec)
    except (TypeError, ValueError):
        raise LogError(
            f"--from {spec!r}: use earliest, latest, an offset, or -N for the last N"
        ) from None
    return max(info.end_offset + n, info.start_offset) if n < 0 else n


def tail(log: PartitionLog, partition: int, start: int | str, limit: int = 20) -> list[Record]:
    """Up to ``limit`` records of ``partition`` from ``start`` (see :func:`resolve_offset`)."""
    offset = resolve_offset(log, partition, start)
    out: list[Record] = []
    while len(out) < limit:
        batch = log.fetch(partition, offset, max_records=limit - len(out))
        if not batch:
            break
        out += batch
        offset = batch[-1].offset + 1
    return out
