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
UTC time, CPU model, load average and a speed probe (``speed_probe_ms``) before and
after, seconds taken and the figures it wrote. README and docs quote ``published.json`` (``python -m benchmarks.publish``).

Budget: a full ``make bench`` must finish within ``TOTAL_BUDGET_S`` (20 min) on the
project's 2-core machine. ``BUDGET_S`` gives each module its share (seconds, full run;
a module not listed gets ``DEFAULT_BUDGET_S``); the end of every run prints a table of
seconds vs budget per module (with the CPU seconds of the module's process and every
process it started, ``benchmarks/cpu.py``: on a loaded machine wall seconds inflate, CPU
seconds much less, so a loaded run can still be judged) and the total wall time, and
records them in provenance (``seconds``, ``cpu_s`` and ``budget`` per module entry; per
mode, ``last_run`` with its modules, total seconds and ``total_budget_s``), so a module
that blows its budget is visible. A module that raises is reported (traceback
printed, ``error`` in its provenance entry), the others still run, and the exit status
is 1; its old figures stay in the results file.
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
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.cpu import tree_cpu_s

HERE = Path(__file__).resolve().parent
TOTAL_BUDGET_S = 1200.0  # a full run, the whole suite
DEFAULT_BUDGET_S = 60.0
# seconds per module in a full run on the project's 2-core machine (quiet); sum <= TOTAL_BUDGET_S.
# Each is the module's measured wall time plus ~20-50 % headroom (2026-12-03, each module alone,
# cold benchmarks/.cache, load average 2-2.7 from other work): drift 98-106 s (+3-5 s since its
# hot loop is warmed up; 112-119 s at load 3.5-4), drift_alarms 39
# (60 CPU s in its 2 processes), drift_loop 13, features 55 (+8-14 s in a cold run: it is the
# first to build the shared 20k x 180-day simulation), import 37, kafka 10, log 13, multihost 58,
# simulate 16, store 9, stream 173, train 62. A whole `make bench` took 680 s (11.3 min) at load
# 2.3-5.4. The sum (875 s) leaves ~5.4 min of the 20 unallotted: headroom for a loaded machine,
# not a share any module should grow into.
BUDGET_S = {
    "bench_drift": 130.0, "bench_drift_alarms": 80.0, "bench_drift_loop": 30.0, "bench_features": 90.0,
    "bench_import": 55.0, "bench_kafka": 25.0, "bench_log": 25.0, "bench_multihost": 90.0,
    "bench_simulate": 25.0, "bench_store": 25.0, "bench_stream": 180.0, "bench_train": 120.0,
}  # fmt: skip


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


def speed_probe_ms() -> float:
    """Milliseconds this machine takes, now, for a fixed pure-Python workload (best of 3
    runs of a 1,000,000-step integer loop, ~0.1 s each): the same code's figures move with
    it between machines and with neighbours' load on a shared one (2026-12-04: 120-140 ms
    on a day the store figures were about half of the day before), so every module's
    provenance records it before and after, and figures from two runs compare only beside it."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        acc = 0
        for i in range(1_000_000):
            acc += i
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 1)


def record(provenance: dict[str, Any], quick: bool, module: str, entry: dict[str, Any]) -> None:
    """Put one module's provenance under its mode (``full``/``quick``)."""
    mode = provenance.setdefault("quick" if quick else "full", {})
    mode["machine"] = machine()
    mode.setdefault("modules", {})[module] = entry


def bytecode_cache_on() -> None:
    """Let Python keep its bytecode cache (``__pycache__``), as a deployed install does.

    With ``PYTHONDONTWRITEBYTECODE=1`` in the environment every fresh process (each stream
    worker, drift check process, import child, ``churn`` CLI) compiled Evidently, pandas,
    xgboost, MLflow, ... from source again: ~20 CPU seconds per process on this machine,
    billed to whatever figure that process was part of, which production never pays
    after its first start. The first process still compiles; the others read the cache."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None or sys.dont_write_bytecode:
        print(
            "(bytecode cache on for the benchmark processes: PYTHONDONTWRITEBYTECODE unset)",
            flush=True,
        )
    sys.dont_write_bytecode = False


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def budget(name: str, quick: bool) -> float:
    """A module's budget in seconds (a quick run: a quarter of the full one)."""
    full = BUDGET_S.get(name, DEFAULT_BUDGET_S)
    return round(full / 4, 1) if quick else full


def budget_table(entries: dict[str, dict[str, Any]], ran: list[str], quick: bool) -> str:
    """Seconds vs budget per module of this run; ``OVER`` marks a blown budget."""
    lines = [f"\n{'module':22s} {'seconds':>8s} {'CPU s':>7s} {'budget':>7s} {'share':>6s}  load before -> after"]
    for name in ran:
        e = entries[name]
        b = e.get("budget", budget(name, quick))
        flag = "  FAILED" if "error" in e else ("  OVER" if e["seconds"] > b else "")
        cpu = f"{e['cpu_s']:7.1f}" if "cpu_s" in e else f"{'-':>7s}"
        lines.append(f"{name:22s} {e['seconds']:8.1f} {cpu} {b:7.0f} {e['seconds'] / b:6.0%}  "
                     f"{e['load_before'][0]:.1f} -> {e['load_after'][0]:.1f}{flag}")  # fmt: skip
    return "\n".join(lines)


def _module(path: Path, root: Path) -> Any:
    if root == HERE:
        return importlib.import_module(f"benchmarks.{path.stem}")
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)  # tests: a tmp dir
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv: list[str], root: Path = HERE) -> int:
    flags = [a for a in argv if a.startswith("-")]
    if any(f in ("-h", "--help") for f in flags):
        print(__doc__)
        return 0
    if unknown := [f for f in flags if f != "--quick"]:
        # e.g. a mistyped flag must not start the whole ~20-min suite
        print(
            f"unknown option(s) {unknown}: the only option is --quick (see --help)", file=sys.stderr
        )
        return 2
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    # One core: the figures are per-core rates.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    bytecode_cache_on()
    results: dict[str, float] = {}
    out = results_path(quick, root)
    if out.exists() and only:
        results.update(json.loads(out.read_text()))
    prov_path = root / "provenance.json"
    provenance = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    ran, failed, t_all = [], [], time.perf_counter()
    for path in sorted(root.glob("bench_*.py")):
        name = path.stem
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"\n=== {name} ({'quick' if quick else 'full'}) ===", flush=True)
        entry: dict[str, Any] = {"commit": commit(root.parent), "quick": quick,
                                 "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "load_before": list(os.getloadavg()),
                                 "speed_probe_ms_before": speed_probe_ms()}  # fmt: skip
        t, cpu0 = time.perf_counter(), tree_cpu_s()
        try:
            figures = _module(path, root).run(quick=quick)
        except Exception as e:  # noqa: BLE001 - reported and recorded; the other modules still run
            traceback.print_exc()
            figures, entry["error"] = {}, f"{type(e).__name__}: {e}"[:2000]
            failed.append(name)
        entry |= {"seconds": round(time.perf_counter() - t, 1), "cpu_s": round(tree_cpu_s() - cpu0, 1),
                  "load_after": list(os.getloadavg()), "speed_probe_ms_after": speed_probe_ms(),
                  "figures": sorted(figures), "budget": budget(name, quick)}  # fmt: skip
        print(f"--- {name}: {entry['seconds']:.1f} s, {entry['cpu_s']:.1f} CPU s (budget {entry['budget']:.0f} s), load average "
              f"{entry['load_before'][0]:.1f} -> {entry['load_after'][0]:.1f}, speed probe "
              f"{entry['speed_probe_ms_before']:.0f} -> {entry['speed_probe_ms_after']:.0f} ms", flush=True)  # fmt: skip
        results.update({k: float(v) for k, v in figures.items()})
        record(provenance, quick, name, entry)
        ran.append(name)
        _write(out, results)  # after every module: an interrupted run keeps what it measured
        _write(prov_path, provenance)
    if only and not ran:
        print(f"no benchmark matches {only}: see benchmarks/bench_*.py", file=sys.stderr)
        return 2
    total = round(time.perf_counter() - t_all, 1)
    mode = provenance["quick" if quick else "full"]
    mode["last_run"] = {"modules": ran, "failed": failed, "total_seconds": total, "total_budget_s": TOTAL_BUDGET_S,
                        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    _write(out, results)
    _write(prov_path, provenance)
    print(f"\nwrote {len(results)} figures to {out} (provenance: {prov_path})")
    for k, v in sorted(results.items()):
        print(f"  {k:40s} {v:,.3f}")
    print(budget_table(mode["modules"], ran, quick))
    print(f"total wall time {total:.0f} s = {total / 60:.1f} min for {len(ran)} module(s)"
          + ("" if quick or only else f" (budget {TOTAL_BUDGET_S / 60:.0f} min: "
             f"{'within' if total <= TOTAL_BUDGET_S else 'OVER'})")
          + f"; load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    if failed:
        print(
            f"FAILED: {', '.join(failed)} (traceback above; their old figures, if any, are kept)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
