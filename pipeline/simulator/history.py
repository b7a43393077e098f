"""Drive the simulator into a partition log: history in bulk, or live at a rate.

Also writes the honesty side table (true daily hazard per active user) as Parquet
parts under ``<sim_dir>/hazard/``, never into the event stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import SimulatorError
from pipeline.log.base import PartitionLog
from pipeline.log.partitioner import partition_for
from pipeline.simulator.core import DayResult, Simulator
from pipeline.simulator.encode import CANCEL, TYPE_NAMES
from pipeline.simulator.lock import producer_lock

Progress = Callable[[int, int], None]  # (days done, events written)


@dataclass
class Summary:
    """What a run generated. ``monthly_churn`` = cancels per 30 active user-days."""

    days: int = 0
    events: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPE_NAMES, 0))
    voluntary: int = 0
    involuntary: int = 0
    user_days: int = 0
    users: int = 0
    active_end: int = 0
    first_day: str = ""
    last_day: str = ""
    seconds: float = 0.0

    @property
    def monthly_churn(self) -> float:
        return 30.0 * self.by_type["cancel"] / self.user_days if self.user_days else 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def add(self, r: DayResult, sim: Simulator, sel: np.ndarray | None = None) -> None:
        """Count the lines ``sel`` (line numbers) of a simulated day (all of it by default)."""
        sel = np.arange(len(r.lines)) if sel is None else sel
        counts = np.bincount(r.etypes[sel], minlength=len(TYPE_NAMES))
        for name, c in zip(TYPE_NAMES, counts.tolist(), strict=True):
            self.by_type[name] += c
        self.events += len(sel)
        self.days += 1
        self.user_days += len(r.hazard_users)
        cancel_lines = [r.lines[i] for i in sel[r.etypes[sel] == CANCEL].tolist()]
        inv = sum(b'"involuntary"' in line for line in cancel_lines)
        self.involuntary += inv
        self.voluntary += len(cancel_lines) - inv
        day = (sim.config.start + timedelta(days=r.day)).date().isoformat()
        self.first_day = self.first_day or day
        self.last_day = day
        self.users = len(sim.pop)
        self.active_end = int(sim.pop.active.sum())

    def as_dict(self) -> dict:
        return {
            "days": self.days, "first_day": self.first_day, "last_day": self.last_day,
            "users": self.users, "active_at_end": self.active_end, "events": self.events,
            "events_by_type": self.by_type, "cancels_voluntary": self.voluntary,
            "cancels_involuntary": self.involuntary, "monthly_churn_rate": round(self.monthly_churn, 4),
            "seconds": round(self.seconds, 2), "events_per_second": round(self.events_per_second),
        }


class Router:
    """user index -> partition, computed once per user with Kafka's murmur2."""

    def __init__(self, num_partitions: int) -> None:
        self.n = num_partitions
        self._table = np.zeros(0, np.int32)

    def partitions(self, sim: Simulator, users: np.ndarray) -> np.ndarray:
        if len(self._table) < len(sim.user_ids):
            new = [partition_for(u, self.n) for u in sim.user_keys[len(self._table):]]
            self._table = np.concatenate([self._table, np.asarray(new, np.int32)])
        return self._table[users]


def append_day(log: PartitionLog, router: Router, sim: Simulator, users: np.ndarray, lines: list[bytes]) -> None:
    """Append lines (already in event-time order) to their partitions, order kept."""
    if not lines:
        return
    parts = router.partitions(sim, users)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(router.n + 1))
    arr = np.asarray(lines, dtype=object)[order]
    for p in range(router.n):
        lo, hi = bounds[p], bounds[p + 1]
        if hi > lo:
            log.append(p, arr[lo:hi].tolist())


def write_hazard(sim_dir: Path, sim: Simulator, results: list[tuple[int, np.ndarray, np.ndarray]]) -> Path | None:
    """One Parquet part: user_id, day, date, hazard (true daily churn probability)."""
    if not results:
        return None
    users = np.concatenate([u for _, u, _ in results]).astype(np.int32)
    days = np.concatenate([np.full(len(u), d, np.int32) for d, u, _ in results])
    hz = np.concatenate([h for _, _, h in results]).astype(np.float32)
    start = np.datetime64(sim.config.start.replace(tzinfo=None), "D")
    table = pa.table({
        "user_id": pa.DictionaryArray.from_arrays(pa.array(users), pa.array(sim.user_ids)),
        "day": pa.array(days),
        "date": pa.array(start + days.astype("timedelta64[D]")),
        "hazard": pa.array(hz),
    })
    out = sim_dir / "hazard"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"part-{results[0][0]:05d}.parquet"
    pq.write_table(table, path)
    return path


def simulate_history(
    sim: Simulator, log: PartitionLog, sim_dir: Path, progress: Progress | None = None
) -> Summary:
    """Write the configured history into ``log``; save simulator state for `produce`."""
    summary, router, hazard = Summary(), Router(log.num_partitions), []
    t = time.perf_counter()
    for r in sim.run():
        append_day(log, router, sim, r.users, r.lines)
        hazard.append((r.day, r.hazard_users, r.hazard))
        summary.add(r, sim)
        if progress:
            progress(summary.days, summary.events)
    write_hazard(sim_dir, sim, hazard)
    sim.save(sim_dir)
    summary.seconds = time.perf_counter() - t
    (sim_dir / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    return summary


def produce_live(
    sim_dir: Path,
    log: PartitionLog,
    rate: float | None,
    max_events: int | None = None,
    max_days: int | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    should_stop: Callable[[], bool] = lambda: False,
) -> Summary:
    """Continue the saved population day after day, at ``rate`` events/s (None: flat out).

    Stops after ``max_events`` / ``max_days`` or when ``should_stop()`` turns true.
    One producer per state (:func:`~pipeline.simulator.lock.producer_lock`; a second one
    is refused). Resumable without duplicates or gaps, whatever stopped the last run (a
    signal, a crash, a full disk in the middle of a batch): the simulator state is saved
    at each day start and ``produce.json`` records every partition's log-end offset at
    that moment. A restart regenerates the day (deterministic) and, per partition, skips
    the day's records the log already holds (the log is the truth, not a counter that a
    failed write may have left behind).
    """
    with producer_lock(sim_dir):
        return _produce(sim_dir, log, rate, max_events, max_days, progress, sleep, monotonic, should_stop)


def _produce(
    sim_dir: Path,
    log: PartitionLog,
    rate: float | None,
    max_events: int | None,
    max_days: int | None,
    progress: Progress | None,
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
    should_stop: Callable[[], bool],
) -> Summary:
    sim = Simulator.load(sim_dir)
    marker = sim_dir / "produce.json"
    mark = _read_mark(marker)
    # No marker of the day the saved state starts (deleted, unreadable, an older copy): an
    # earlier run may still have written part of it. The log says how much: look there.
    unmarked = mark.get("day") != sim.day
    summary, router = Summary(), Router(log.num_partitions)
    chunk = max(1, int(rate // 20)) if rate else 50_000
    t0, sent, finished_day = monotonic(), 0, True
    while max_days is None or summary.days < max_days:
        if mark.get("day") == sim.day and "ends" in mark:
            ends = [int(e) for e in mark["ends"]]  # resuming this day: where it began
        else:
            sim.save(sim_dir)  # state at the start of the day
            ends = [log.end_offset(p) for p in range(log.num_partitions)]
            if "ends" not in mark and mark.get("day") == sim.day:  # marker of an older version
                ends = None
        r = sim.step()
        parts = router.partitions(sim, r.users)
        if ends is None:
            todo = np.arange(int(mark.get("written", 0)), len(r.lines))
            ends = _day_start_ends(log, parts, len(r.lines) - len(todo), r)
        else:
            if unmarked:
                ends = _day_start_in_log(log, parts, r)
            todo = _left_to_write(log, parts, ends, r.day)
        unmarked = False
        mark = {"day": r.day, "ends": ends}
        _write_mark(marker, mark)  # before the day's first record: a resume finds its start
        skipped = len(r.lines) - len(todo)
        done = 0
        while done < len(todo) and not should_stop():
            room = len(todo) if max_events is None else max_events - sent
            if room <= 0:
                break
            sel = todo[done : min(len(todo), done + chunk, done + room)]
            append_day(log, router, sim, r.users[sel], [r.lines[i] for i in sel.tolist()])
            sent += len(sel)
            done += len(sel)
            if rate:
                ahead = sent / rate - (monotonic() - t0)
                if ahead > 0:
                    sleep(ahead)
            if progress:
                progress(summary.days, sent)
        summary.add(r, sim, sel=todo[:done])
        write_hazard(sim_dir, sim, [(r.day, r.hazard_users, r.hazard)])
        finished_day = skipped + done >= len(r.lines)
        if not finished_day:  # stopped mid-day: saved state and marker stay at this day's start
            break
    if finished_day:
        sim.save(sim_dir)
    summary.seconds = monotonic() - t0
    return summary


def _left_to_write(log: PartitionLog, parts: np.ndarray, ends: list[int], day: int) -> np.ndarray:
    """Line numbers of the day not yet in the log: per partition, the day's lines go in
    order, so the first ``end_offset - day_start`` of them are there and the rest not."""
    if len(ends) != log.num_partitions:
        raise SimulatorError(
            f"produce.json was written for {len(ends)} partitions but the topic has "
            f"{log.num_partitions}; re-run `churn simulate --overwrite`"
        )
    done = np.zeros(len(parts), bool)
    for p, start in enumerate(ends):
        mine = np.flatnonzero(parts == p)
        have = log.end_offset(p) - start
        if not 0 <= have <= len(mine):
            raise SimulatorError(
                f"partition {p} holds {have} records since simulated day {day} began, but that day "
                f"has {len(mine)} for it: something else wrote to (or truncated) the topic. "
                "Resuming would duplicate or lose events; re-run `churn simulate --overwrite`"
            )
        done[mine[:have]] = True
    return np.flatnonzero(~done)


def _day_start_in_log(log: PartitionLog, parts: np.ndarray, r: DayResult) -> list[int]:
    """Day-start offsets found in the log, for a day without a marker: the day is regenerated
    byte for byte, and an earlier run appended each partition's share of it in order, so
    what it wrote is a prefix of that share sitting at the partition's end."""
    ends = []
    for p in range(log.num_partitions):
        mine = [r.lines[i] for i in np.flatnonzero(parts == p).tolist()]
        end = log.end_offset(p)
        at = max(log.start_offset(p), end - len(mine))
        tail: list[bytes] = []
        while at + len(tail) < end:
            values, _ = log.fetch_values(p, at + len(tail), max_records=end - at - len(tail))
            if not values:
                break
            tail += values
        have = len(tail) - tail.index(mine[0]) if mine and mine[0] in tail else 0
        if tail[len(tail) - have :] != mine[:have]:
            raise SimulatorError(
                f"partition {p} ends with part of simulated day {r.day} out of order (produce.json, which "
                "records where the day began, is missing or unreadable): something else wrote to the topic. "
                "Resuming would duplicate or lose events; re-run `churn simulate --overwrite`"
            )
        ends.append(end - have)
    return ends


def _day_start_ends(log: PartitionLog, parts: np.ndarray, written: int, r: DayResult) -> list[int]:
    """Day-start offsets from an old-style marker (``written`` lines of the day, in order)."""
    counts = np.bincount(parts[:written], minlength=log.num_partitions)
    return [log.end_offset(p) - int(counts[p]) for p in range(log.num_partitions)]


def _read_mark(path: Path) -> dict:
    try:
        mark = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return mark if isinstance(mark, dict) else {}


def _write_mark(path: Path, mark: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mark))
    tmp.replace(path)
