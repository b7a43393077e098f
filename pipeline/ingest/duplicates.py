"""Exact duplicate rows of one import: the same event written twice by the source.

Exports from at-least-once pipelines repeat rows. Each repeat is a valid row, and it keeps
its own event id (``<file key>-<row>``), so it is imported - but it counts twice in every
windowed count. The importer does not guess which copy is real; it counts the repeats so
the summary says so (``duplicate_rows``) and the user can clean the export.

Two events are duplicates when user, event time, type and every other field are equal
(everything but the event id). Candidates are found by sorting the (user, time, type)
columns; only those are compared byte by byte, so a log without repeats costs one sort.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np

_EVENT_ID = re.compile(rb'"event_id":"[^"]*",?')
CHUNK = 100_000  # candidates whose payloads are held at once


def count_duplicates(ucode: np.ndarray, ts: np.ndarray, code: np.ndarray,
                     payload: Callable[[np.ndarray], list[bytes]]) -> int:
    """Events equal to an earlier one in everything but the event id.

    ``payload(idx)`` returns the encoded events at the positions ``idx``.

    >>> import numpy as np
    >>> raw = [b'{"event_id":"a-1","v":1}', b'{"event_id":"a-2","v":1}', b'{"event_id":"a-3","v":2}']
    >>> count_duplicates(np.zeros(3, int), np.zeros(3, int), np.zeros(3, int), lambda i: [raw[k] for k in i])
    1
    """
    n = len(ts)
    if n < 2:
        return 0
    who = ucode.astype(np.int64) * 256 + code.astype(np.int64)  # user and type in one key (type < 256)
    order = np.lexsort((who, ts))
    w, t = who[order], ts[order]
    same = (w[1:] == w[:-1]) & (t[1:] == t[:-1])
    if not same.any():
        return 0
    in_group = np.zeros(n, bool)  # members of a run of equal (user, time, type)
    in_group[1:] |= same
    in_group[:-1] |= same
    idx = order[in_group]
    keys = np.cumsum(np.concatenate([[True], ~same]))[in_group]  # run id of each member (runs are contiguous)
    seen: set[bytes] = set()  # bodies of the current run only: memory bounded by the longest run
    run, repeats = -1, 0
    for lo in range(0, len(idx), CHUNK):  # coarse times (dates, whole seconds) make most rows candidates
        for k, raw in zip(keys[lo:lo + CHUNK].tolist(), payload(idx[lo:lo + CHUNK]), strict=True):
            if k != run:
                run = k
                seen.clear()
            body = hashlib.blake2b(_EVENT_ID.sub(b"", raw, count=1), digest_size=16).digest()
            if body in seen:
                repeats += 1
            else:
                seen.add(body)
    return repeats
