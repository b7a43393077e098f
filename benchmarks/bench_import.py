"""`churn import` throughput and memory on a 1,000,000-row CSV in the music-streaming layout.

* ``csv_parse_floor_rows_per_s``: the same file parsed by the same streaming reader
  (``pipeline.ingest.readers.open_csv``: pyarrow, one thread, the mapped columns), doing
  nothing with the batches: what reading alone costs.
* ``import_rows_per_s``: the whole import (hash, read, map + validate every row with the
  contract's types, synthesize signups, sort, append to a fresh 4-partition file topic,
  ledger) of a file where **every row becomes an event** (only pages the mapping maps:
  ~97 % song plays, help, upgrades, downgrades, cancellations), with the mapping's own
  ``max_rejected_share``.
* ``import_drop_rows_per_s``: the same import of the page log's real mix, where ~38 % of
  the rows are other pages (Home, Thumbs Up) that the mapping's ``unmapped: drop`` rule
  skips (rows read per CPU second; the dropped rows cost only their parse).
* ``import_peak_rss_mb``: peak resident memory (VmHWM) of a process doing only the
  import; the process's RSS after its imports, before reading, is printed beside it.

Rates are rows per CPU second of one process (user + sys; single-threaded), median of
3 runs; each import runs in its own fresh process, so its peak memory is its own.
~100k users.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.memory import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "docs" / "examples" / "music_mapping.yaml"
PAGES = np.array(["NextSong", "Home", "Thumbs Up", "Help", "Submit Upgrade", "Cancellation Confirmation"])
PAGE_P = np.array([0.62, 0.3, 0.072, 0.004, 0.002, 0.002])
MAPPED = np.array(["NextSong", "Help", "Submit Upgrade", "Submit Downgrade", "Cancellation Confirmation"])
MAPPED_P = np.array([0.97, 0.012, 0.008, 0.006, 0.004])
T0_MS, SPAN_DAYS = 1_767_225_600_000, 150  # the page log's rows: 2026-01-01 + 150 days
# the import's clock: a day after the last row (a FakeClock's default, 2026-01-01, made the
# importer reject 99 % of the rows as future-dated and the run fail)
IMPORT_NOW = datetime.fromtimestamp(T0_MS / 1000, UTC) + timedelta(days=SPAN_DAYS + 1)


def make_csv(path: Path, rows: int, seed: int = 1, every_row_an_event: bool = False) -> Path:
    """A synthetic page log with the sample's columns (vectorised; ~2 s for 1M rows):
    the real page mix, or only pages the mapping turns into events."""
    rng = np.random.default_rng(seed)
    users = rng.integers(100, 100_100, rows)
    ts = np.sort(T0_MS + rng.integers(0, SPAN_DAYS * 86_400_000, rows))
    pages, probs = (MAPPED, MAPPED_P) if every_row_an_event else (PAGES, PAGE_P)
    page = pages[rng.choice(len(pages), rows, p=probs)]
    song = page == "NextSong"
    length = np.where(song, rng.uniform(120, 360, rows).round(5), np.nan)
    agents = np.array(["Mozilla/5.0 (Windows NT 10.0)", "Mozilla/5.0 (Macintosh)", "Mozilla/5.0 (iPhone)"])
    table = pa.table({
        "ts": ts, "userId": pa.array(users.astype(str)), "sessionId": rng.integers(1, 10**6, rows),
        "page": page, "auth": np.full(rows, "Logged In"), "level": np.where(users % 3 == 0, "paid", "free"),
        "itemInSession": rng.integers(0, 50, rows), "length": pa.array(length, from_pandas=True),
        "song": np.where(song, "Song", ""), "artist": np.where(song, "Artist", ""),
        "registration": 1_760_000_000_000 + users * 1000, "userAgent": agents[users % 3],
    })
    pacsv.write_csv(table, path)
    return path


def parse_floor(path: Path) -> tuple[float, int]:
    """CPU seconds and rows for reading ``path`` with the importer's CSV reader only."""
    from pipeline.ingest.mapping import load_mapping
    from pipeline.ingest.readers import open_csv

    m = load_mapping(MAPPING)
    t = time.process_time()
    raw = pa.OSFile(str(path), "rb")
    rows = sum(b.num_rows for b in open_csv(raw, m, m.delimiter_for(path), m.columns()))
    raw.close()
    return time.process_time() - t, rows




def _child(csv_path: str, data_dir: str) -> None:
    """One import in this fresh process; prints JSON figures."""
    from pipeline.clock import FakeClock
    from pipeline.ingest import Ledger, load_mapping, run_import
    from pipeline.log import open_log

    base_rss = peak_rss_mb()
    m = load_mapping(MAPPING)
    log = open_log(Path(data_dir) / "log", "events", 4)
    t, w = time.process_time(), time.perf_counter()
    s = run_import([Path(csv_path)], m, log, Ledger(Path(data_dir) / "import" / "events"), FakeClock(IMPORT_NOW))
    cpu, wall = time.process_time() - t, time.perf_counter() - w
    log.close()
    print(json.dumps({"cpu": cpu, "wall": wall, "rows": s.rows_read, "written": s.written,
                      "peak_rss_mb": peak_rss_mb(),
                      "base_rss_mb": base_rss}))


def _imports(path: Path, tmp: Path, rows: int, tag: str) -> dict[str, float]:
    """Median of 3 imports of ``path``, each in a fresh process."""
    imports, peaks, bases, walls, written = [], [], [], [], 0
    for i in range(3):
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_import", "--child", str(path),
                              str(tmp / f"data-{tag}{i}")], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"import child exited with {out.returncode}:\n{out.stderr[-4000:]}")
        d = json.loads(out.stdout.strip().splitlines()[-1])
        assert d["rows"] == rows
        imports.append(d["rows"] / d["cpu"])
        walls.append(d["rows"] / d["wall"])
        peaks.append(d["peak_rss_mb"])
        bases.append(d["base_rss_mb"])
        written = d["written"]
    return {"rate": statistics.median(imports), "wall": statistics.median(walls),
            "peak": statistics.median(peaks), "base": statistics.median(bases), "written": written}  # fmt: skip


def run(quick: bool = False) -> dict[str, float]:
    rows = 200_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        every = make_csv(Path(tmp) / "events.csv", rows, every_row_an_event=True)
        mixed = make_csv(Path(tmp) / "pages.csv", rows)
        print(f"{rows:,} rows, {every.stat().st_size / 1e6:.0f} MB CSV")
        floors = []
        for _ in range(3):
            cpu, n = parse_floor(every)
            assert n == rows
            floors.append(n / cpu)
        full = _imports(every, Path(tmp), rows, "every")
        assert full["written"] >= rows, "every row should have become an event"
        drop = _imports(mixed, Path(tmp), rows, "drop")
    floor = statistics.median(floors)
    print(f"csv parse floor (same reader, mapped columns): {floor:,.0f} rows/s (CPU)")
    print(f"import, every row an event:                    {full['rate']:,.0f} rows/s (CPU), "
          f"{full['wall']:,.0f} rows/s wall; {full['written']:,} events written (signups included)")
    print(f"import, real page mix (drop rule skips ~38 %):  {drop['rate']:,.0f} rows/s (CPU); "
          f"{drop['written']:,} events written")
    print(f"ratio import / parse floor: {full['rate'] / floor:.3f}")
    print(f"peak RSS of the import process: {full['peak']:,.0f} MB "
          f"(after its imports, before reading: {full['base']:,.0f} MB)")
    return {"import_rows_per_s": full["rate"], "import_drop_rows_per_s": drop["rate"],
            "csv_parse_floor_rows_per_s": floor, "import_peak_rss_mb": full["peak"]}  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        run(quick="--quick" in sys.argv)
