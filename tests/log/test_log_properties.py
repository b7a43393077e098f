"""Property: any interleaving of appends and fetches returns exactly what was appended."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.log import FileLog, MemoryLog, open_log

value = st.binary(max_size=40).filter(lambda b: b"\n" not in b)
append_op = st.tuples(st.just("append"), st.integers(0, 1), st.lists(value, max_size=12))
fetch_op = st.tuples(
    st.just("fetch"),
    st.integers(0, 1),
    st.tuples(st.integers(0, 60), st.integers(1, 20), st.integers(1, 300)),
)
reopen_op = st.tuples(st.just("reopen"), st.just(0), st.just(None))
ops = st.lists(st.one_of(append_op, fetch_op, reopen_op), max_size=40)


def check(log, model: list[list[bytes]], op) -> None:
    kind, p, arg = op
    if kind == "append":
        first, end = log.append(p, arg)
        assert (first, end) == (len(model[p]), len(model[p]) + len(arg))
        model[p] += arg
    elif kind == "fetch":
        offset, max_records, max_bytes = arg
        got = log.fetch(p, offset, max_records=max_records, max_bytes=max_bytes)
        want = model[p][offset : offset + max_records]
        assert [r.value for r in got] == want[: len(got)]
        assert [r.offset for r in got] == list(range(offset, offset + len(got)))
        if want:
            assert got, "at least one record when any exists"
            assert len(got) == 1 or sum(len(r.value) + 1 for r in got) <= max_bytes
    for q in (0, 1):
        assert log.end_offset(q) == len(model[q])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops, st.integers(1, 200), st.integers(1, 64))
def test_file_log_returns_exactly_what_was_appended(operations, segment_bytes, interval):
    with tempfile.TemporaryDirectory() as tmp:
        opts = {"segment_bytes": segment_bytes, "index_interval_bytes": interval}
        log: FileLog = open_log(Path(tmp), "t", 2, **opts)
        model: list[list[bytes]] = [[], []]
        for op in operations:
            if op[0] == "reopen":  # a fresh process view: no cached state, no hints
                log.close()
                log = open_log(Path(tmp), "t", 2, **opts)
                continue
            check(log, model, op)
        for p in (0, 1):
            assert [r.value for r in log.iter_records(p, 0)] == model[p]
        log.close()


@settings(max_examples=60, deadline=None)
@given(ops)
def test_memory_log_returns_exactly_what_was_appended(operations):
    log = MemoryLog("t", 2)
    model: list[list[bytes]] = [[], []]
    for op in operations:
        if op[0] != "reopen":
            check(log, model, op)
