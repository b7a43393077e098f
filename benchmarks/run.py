"""`make bench`: run every benchmark, print figures, write benchmarks/results.json.

Each ``benchmarks/bench_*.py`` exposes ``run(quick: bool = False) -> dict[str, float]``
(medians of several runs, printed with their baselines and definitions); a new module is
picked up by its name, nothing to register. ``results.json`` is one flat JSON object:
figure name -> number.

* ``python -m benchmarks.run``: the full run -> ``results.json``.
* ``python -m benchmarks.run --quick``: a smoke run -> ``results-quick.json``; it never
  touches ``results.json``.
* ``python -m benchmarks.run stream store``: only those modules (``bench_`` prefix
  optional); their figures are merged into the file of that mode.

Every run also records where its figures come from in ``provenance.json``: per mode
(``full``/``quick``) and per module, the commit (``+dirty`` with uncommitted changes),
UTC time, CPU model, load average before and after, seconds taken and the figures it
wrote. README and docs quote ``published.json`` (``python -m benchmarks.publish``).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def results_path(quick: bool, root: Path = HERE) -> Path:
    return root / ("results-quick.json" if quick else "results.json")


def commit(root: Path = HERE.parent) -> str:
    """``git describe``-like: the HEAD commit, ``+dirty`` if the tree has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()}


def record(provenance: dict[str, Any], quick: bool, module: str, entry: dict[str, Any]) -> None:
    """Put one module's provenance under its mode (``full``/``quick``)."""
    mode = provenance.setdefault("quick" if quick else "full", {})
    mode["machine"] = machine()
    mode.setdefault("modules", {})[module] = entry


def _module(path: Path, root: Path) -> Any:
    if root == HERE:
        return importlib.import_module(f"benchmarks.{path.stem}")
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)  # tests: a tmp dir
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv: list[str], root: Path = HERE) -> int:
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    # One core: the figures are per-core rates.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    results: dict[str, float] = {}
    out = results_path(quick, root)
    if out.exists() and only:
        results.update(json.loads(out.read_text()))
    prov_path = root / "provenance.json"
    provenance = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    ran = []
    for path in sorted(root.glob("bench_*.py")):
        name = path.stem
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {name} ({'quick' if quick else 'full'}) ===", flush=True)
        entry: dict[str, Any] = {"commit": commit(root.parent), "quick": quick,
                                 "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "load_before": list(os.getloadavg())}  # fmt: skip
        t = time.perf_counter()
        figures = _module(path, root).run(quick=quick)
        entry |= {"seconds": round(time.perf_counter() - t, 1), "load_after": list(os.getloadavg()),
                  "figures": sorted(figures)}  # fmt: skip
        print(f"--- {name}: {entry['seconds']:.1f} s, load average {entry['load_before'][0]:.1f} "
              f"-> {entry['load_after'][0]:.1f}", flush=True)  # fmt: skip
        results.update({k: float(v) for k, v in figures.items()})
        record(provenance, quick, name, entry)
        ran.append(name)
    if only and not ran:
        print(f"no benchmark matches {only}: see benchmarks/bench_*.py", file=sys.stderr)
        return 2
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    prov_path.write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {len(results)} figures to {out} (provenance: {prov_path})")
    for k, v in sorted(results.items()):
        print(f"  {k:40s} {v:,.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
