"""Simulator throughput: events generated per second *including* writing them out.

Printed beside two baselines from the same run: generation alone (no output) and the
raw write floor (the same bytes appended to one plain file, no log machinery).
Figure: ``simulate_eps`` (generate + write into a 4-partition file log, one core).
Rates are per CPU second of this (single-threaded) process, like ``bench_log``: the
machine is shared, and wall-clock swings with other load; wall time is printed too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from pipeline.log import open_log
from pipeline.simulator import SimConfig, Simulator
from pipeline.simulator.history import simulate_history


def _once(users: int, days: int) -> tuple[float, float, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.process_time()
        lines = [line for r in Simulator(SimConfig(users=users, days=days)).run() for line in r.lines]
        gen = time.process_time() - t
        n = len(lines)
        t = time.process_time()
        with open(root / "raw.jsonl", "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        raw = time.process_time() - t
        del lines
        log = open_log(root / "log", "events", num_partitions=4)
        t, w = time.process_time(), time.perf_counter()
        simulate_history(Simulator(SimConfig(users=users, days=days)), log, root / "sim")
        full, wall = time.process_time() - t, time.perf_counter() - w
        log.close()
    return n / gen, n / raw, n / full, n, n / wall


def run(quick: bool = False) -> dict[str, float]:
    users, days, reps = (5_000, 30, 1) if quick else (20_000, 60, 3)
    runs = [_once(users, days) for _ in range(reps)]
    gen, raw, full = (statistics.median(r[i] for r in runs) for i in range(3))
    n, wall = runs[0][3], statistics.median(r[4] for r in runs)
    print(f"{n:,} events ({users:,} users x {days} days), median of {reps}, per CPU second")
    print(f"  generate only            {gen:12,.0f} events/s")
    print(f"  raw write floor          {raw:12,.0f} events/s")
    print(f"  generate + file log      {full:12,.0f} events/s  (target >= 200,000; {full / 200_000:.2f}x)")
    print(f"  ratio to generate-only   {full / gen:12.2f}")
    print(f"  (wall clock, shared box  {wall:12,.0f} events/s)")
    return {"simulate_eps": full, "simulate_generate_only_eps": gen}


if __name__ == "__main__":
    run()
