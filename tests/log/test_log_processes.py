"""Several processes on one file topic: producers, a live consumer, a killed committer."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import OffsetsCorruptError
from pipeline.log import FileLog, open_log, partition_for

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
WORKER = str(Path(__file__).with_name("log_workers.py"))


ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: object, **kw: object) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env, **kw)  # type: ignore[call-overload]


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> None:
    try:
        for p in procs:
            assert p.wait(timeout=timeout) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_producers_and_a_consumer_every_record_once_in_order(tmp_path):
    log = open_log(tmp_path, "events", 3)
    batches, size = 120, 40
    out = tmp_path / "consumed.json"
    procs = [spawn("consume", log.path, 2 * batches * size, out)]
    procs += [spawn("produce", log.path, pid, batches, size, 8192) for pid in ("A", "B")]
    finish(procs)

    consumed = json.loads(out.read_text())
    stored = [[p, r.offset, r.value.decode()] for p in range(3) for r in log.iter_records(p, 0)]
    assert sorted(consumed) == sorted(stored)  # the live consumer saw exactly what is stored
    assert len(stored) == 2 * batches * size
    assert log.partition_info(0).segments > 1  # rolls happened under contention

    seen = set()
    by_partition: dict[int, list[dict]] = defaultdict(list)
    for p, _offset, value in sorted(stored):
        rec = json.loads(value)
        key = (rec["p"], rec["s"])
        assert key not in seen  # exactly once
        seen.add(key)
        assert partition_for(f"user-{rec['s'] % 23}".encode(), 3) == p  # routed like Kafka
        by_partition[p].append(rec)
    assert len(seen) == 2 * batches * size
    for recs in by_partition.values():
        for producer in "AB":
            seqs = [r["s"] for r in recs if r["p"] == producer]
            assert seqs == sorted(seqs)  # per-producer order within the partition
        # no interleaving: one producer's batch is contiguous in the partition
        runs = [(r["p"], r["b"]) for r in recs]
        starts = [i for i in range(len(runs)) if i == 0 or runs[i] != runs[i - 1]]
        assert len(starts) == len(set(runs))


def test_commits_survive_kill_9_at_random_moments(tmp_path):
    log = open_log(tmp_path, "events", 4)
    rng = random.Random(7)
    last = 0
    for _ in range(6):
        proc = spawn("commit", log.path, "g", last, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.02, 0.25))  # let it commit a random number of times
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        committed = FileLog(log.path).committed("g")  # never torn: parses every time
        values = set(committed.values())
        assert len(values) <= 1 and (not committed or len(committed) == 4)  # old or new commit
        now = values.pop() if values else last
        assert now >= last
        last = now
    assert last > 0
    history = FileLog(log.path).commit_history("g")[0]
    assert len(history) <= 20 and history[-1].offset == last


def test_corrupt_offsets_file_names_file_and_recovery(tmp_path):
    log = open_log(tmp_path, "events", 2)
    log.append(0, [b'{"a":1}'] * 5)
    log.commit("g", {0: 3}, WHEN)
    path = log.path / "groups" / "g.json"
    for garbage in (
        b'{"format": 1, "group": "g", "offs',
        b"",
        b'{"format":1,"group":"g","offsets":{"0":-4},"history":{}}',
    ):
        path.write_bytes(garbage)
        with pytest.raises(OffsetsCorruptError) as err:
            log.committed("g")
        assert str(path) in str(err.value) and "--reset-offsets earliest|latest" in str(err.value)
    with pytest.raises(OffsetsCorruptError):  # commits refuse to overwrite silently, too
        log.commit("g", {0: 4}, WHEN)
    assert log.reset_offsets("g", to="latest") == {0: 5, 1: 0}
    assert log.committed("g") == {0: 5, 1: 0}


def _fork_child(log: FileLog) -> None:
    for i in range(50):
        log.append(0, [f'{{"child":{i}}}'.encode()] * 3)


def test_a_forked_child_reopens_the_lock_and_does_not_interleave(tmp_path):
    import multiprocessing

    log = open_log(tmp_path, "events", 1)
    log.append(0, [b'{"parent":-1}'])  # the parent holds open files before the fork
    child = multiprocessing.get_context("fork").Process(target=_fork_child, args=(log,))
    child.start()
    for i in range(50):
        log.append(0, [f'{{"parent":{i}}}'.encode()] * 3)
    child.join(timeout=60)
    assert child.exitcode == 0
    values = [r.value for r in FileLog(log.path).iter_records(0, 0)]
    assert len(values) == 1 + 2 * 50 * 3
    runs = values[1:]
    assert all(runs[i] == runs[i + 1] == runs[i + 2] for i in range(0, len(runs), 3))
