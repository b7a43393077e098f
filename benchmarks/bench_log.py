"""File partition log throughput: produce, and consume + decode against a raw floor.

* ``log_produce_eps``: route each event by its user key (Kafka murmur2) and append to a
  fresh 4-partition file topic in batches of 10,000 (target >= 300,000 events/s).
* ``log_consume_eps``: a fresh consumer fetches every partition sequentially with
  ``fetch_values`` and decodes each value with ``events.try_decode`` through the
  dead-letter helper (no dead letters here) (target >= 70% of the floor).
* ``decode_floor_eps``: the same segment files read raw (1.5 MB chunks split on
  newlines, about what one fetch reads) and decoded with the same decoder: no log
  machinery at all. Reading each whole file and ``splitlines()`` is also printed; it
  is slower (one huge allocation per segment), so the chunked one is the floor.

Also printed: consuming through ``fetch()`` (``Record`` objects).
Rates are events per **CPU second of this process** (user + sys, ``time.process_time``),
median of 3 runs (quick: 1; each figure's spread, min-max, is printed; the whole-file read
once, it is only printed): the benchmark is single-threaded, and CPU time keeps other
load on a shared machine from skewing the figures; on an idle machine wall-clock rates
are about the same. Events are synthetic Session/Payment lines for ~10k users built
with ``pipeline.events`` (no simulator dependency).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from pipeline.clock import FakeClock
from pipeline.events import Payment, Session, encode, try_decode
from pipeline.log import DeadLetters, MemoryLog, decode_values, open_log

BATCH = 10_000
CHUNK = 1_500_000  # bytes: about one fetch of 10,000 events
PARTITIONS = 4
_clock = time.process_time


def make_events(n: int, users: int = 10_000, seed: int = 7) -> tuple[list[bytes], list[bytes]]:
    """``n`` (key, encoded event) pairs: ~80% sessions, ~20% payments, time-ordered."""
    rng = np.random.default_rng(seed)
    uid = rng.integers(0, users, n)
    minutes = rng.gamma(2.0, 40.0, n).round(1).clip(0, 1440)
    kinds = rng.random(n) < 0.2
    devices = ("tv", "mobile", "web", "tablet")
    plans = ("basic", "standard", "premium")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    keys, values = [], []
    for i in range(n):
        user = f"user-{uid[i]:06d}"
        ts = t0 + timedelta(seconds=i * 3)
        if kinds[i]:
            ev = Payment(
                event_id=f"ev-{i:08d}", user_id=user, ts=ts, schema_version=1,
                amount=(8.99, 13.99, 19.99)[i % 3], plan=plans[i % 3],
            )  # fmt: skip
        else:
            ev = Session(
                event_id=f"ev-{i:08d}", user_id=user, ts=ts, schema_version=1,
                watch_minutes=float(minutes[i]), device=devices[i % 4],
            )  # fmt: skip
        keys.append(user.encode())
        values.append(encode(ev))
    return keys, values


def _produce(root: Path, keys: list[bytes], values: list[bytes]) -> float:
    log = open_log(root, "events", PARTITIONS)
    t = _clock()
    for i in range(0, len(values), BATCH):
        log.produce(zip(keys[i : i + BATCH], values[i : i + BATCH], strict=True))
    dt = _clock() - t
    log.close()
    return dt


def _consume(root: Path, records: bool = False) -> tuple[float, int]:
    log = open_log(root, "events")  # a fresh consumer: no cached state
    dlq = DeadLetters(MemoryLog("events.dlq", PARTITIONS), FakeClock(), "events")
    n = 0
    t = _clock()
    for p in range(PARTITIONS):
        offset = 0
        while True:
            if records:
                recs = log.fetch(p, offset, max_records=BATCH)
                if not recs:
                    break
                values = [r.value for r in recs]
                nxt = recs[-1].offset + 1
            else:
                values, nxt = log.fetch_values(p, offset, max_records=BATCH)
                if not values:
                    break
            events, _ = decode_values(p, offset, values, dlq)
            n += len(events)
            offset = nxt
    dt = _clock() - t
    log.close()
    assert dlq.count == 0
    return dt, n


def _floor(root: Path, whole_files: bool = False) -> tuple[float, int]:
    files = sorted((root / "events").glob("partition-*/*.log"))
    n = 0
    t = _clock()
    for f in files:
        if whole_files:
            lines = f.read_bytes().splitlines()
            for i in range(0, len(lines), BATCH):  # decode in the consumer's batch size
                n += len([try_decode(v) for v in lines[i : i + BATCH]])
            continue
        with open(f, "rb") as fh:
            carry = b""
            while chunk := fh.read(CHUNK):
                lines = (carry + chunk).split(b"\n")
                carry = lines.pop()
                n += len([try_decode(v) for v in lines])
    return _clock() - t, n


def run(quick: bool = False) -> dict[str, float]:
    n, reps = (100_000, 1) if quick else (1_000_000, 3)
    t = time.perf_counter()
    keys, values = make_events(n)
    avg = sum(map(len, values)) / n
    print(f"{n:,} events ({avg:.0f} B avg), built in {time.perf_counter() - t:.1f} s")
    figures: dict[str, list[float]] = {k: [] for k in ("prod", "cons", "rec", "floor", "whole")}
    for rep in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            figures["prod"].append(n / _produce(root, keys, values))
            for name, (fn, arg) in {
                "floor": (_floor, False),
                "cons": (_consume, False),
                "whole": (_floor, True),
                "rec": (_consume, True),
            }.items():
                if name == "whole" and rep:
                    continue  # printed only, not a figure: once is enough
                dt, got = fn(root, arg)
                assert got == n, (name, got, n)
                figures[name].append(n / dt)
    med = {k: statistics.median(v) for k, v in figures.items()}
    sp = {k: f"  [{min(v):,.0f} - {max(v):,.0f}]" if len(v) > 1 else "" for k, v in figures.items()}
    produce, consume, floor = med["prod"], med["cons"], med["floor"]
    print(f"median of {reps} [spread min - max], events per CPU second of one process")
    print(
        f"  produce (route + append)         {produce:12,.0f}  (target >= 300,000: {produce / 3e5:.2f}x){sp['prod']}"
    )
    print(f"  consume + decode, fetch_values() {consume:12,.0f}{sp['cons']}")
    print(f"  consume + decode, fetch() Record {med['rec']:12,.0f}{sp['rec']}")
    print(f"  floor: raw chunks + split + decode {floor:10,.0f}{sp['floor']}")
    print(f"  (raw whole file + splitlines)    {med['whole']:12,.0f}  (one run)")
    print(f"  ratio consume / floor            {consume / floor:12.2f}  (target >= 0.70)")
    print(f"  ratio fetch() Record / floor     {med['rec'] / floor:12.2f}")
    return {
        "log_produce_eps": produce,
        "log_consume_eps": consume,
        "log_consume_records_eps": med["rec"],
        "decode_floor_eps": floor,
    }


if __name__ == "__main__":
    run()
