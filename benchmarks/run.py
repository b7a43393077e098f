"""`make bench`: run every benchmark, print figures, write benchmarks/results.json.

Each ``benchmarks/bench_*.py`` exposes ``run(quick: bool = False) -> dict[str, float]``
(medians of several runs, printed with their baselines). ``results.json`` is one flat
JSON object: figure name -> number. ``python -m benchmarks.run --quick`` is a smoke run.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    # One core: the figures are per-core rates.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    results: dict[str, float] = {}
    out = HERE / "results.json"
    if out.exists() and only:
        results.update(json.loads(out.read_text()))
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        t = time.perf_counter()
        figures = importlib.import_module(f"benchmarks.{name}").run(quick=quick)
        print(f"--- {name}: {time.perf_counter() - t:.1f} s", flush=True)
        results.update({k: float(v) for k, v in figures.items()})
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {len(results)} figures to {out}")
    for k, v in sorted(results.items()):
        print(f"  {k:32s} {v:,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
