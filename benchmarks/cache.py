"""Inputs the benchmarks share, built once: simulated histories and the trained champion.

Several modules start from the same simulation (the default one, 20,000 users x 180 days,
seed 42, 4 partitions: ``bench_stream``'s champion, ``bench_train``, ``bench_features``'
snapshots) and ``bench_stream`` fits the same champion on every run. Building them is
input preparation, never what a figure times, so they are kept in ``benchmarks/.cache/``
(git-ignored; ``CHURN_BENCH_CACHE`` moves it, ``CHURN_BENCH_CACHE=off`` turns it off),
each under a key of its parameters **and the code version**: a hash of every source file
that could change what is built (``pipeline/**/*.py``, ``models/*.yaml``,
``pyproject.toml``). Any change there builds afresh; stale entries are not reused.

Entries are written to a temporary folder and renamed into place, so a crashed build
leaves nothing half-written. Consumers that write beside a cached log get a copy whose
files are hard links (:func:`linked_copy`): the log is append-only and the benchmarks
never append to it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "benchmarks" / ".cache"


def cache_dir() -> Path | None:
    """The cache folder, or None when ``CHURN_BENCH_CACHE=off``."""
    value = os.environ.get("CHURN_BENCH_CACHE", "")
    if value.lower() in ("off", "0", "no", "false"):
        return None
    return Path(value) if value else DEFAULT_DIR


@cache
def code_version(root: Path = ROOT) -> str:
    """A hash of the sources that decide what a cached input contains."""
    h = hashlib.sha256()
    files = sorted(
        [
            *(root / "pipeline").rglob("*.py"),
            *(root / "models").glob("*.yaml"),
            root / "pyproject.toml",
        ]
    )
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def key(kind: str, **params: Any) -> str:
    parts = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    return f"{kind}-{parts}-{code_version()}"


def entry(
    name: str, build: Callable[[Path], None], tmp_root: Path | None = None
) -> tuple[Path, bool]:
    """The folder of cache entry ``name``, built by ``build(folder)`` if absent.
    Returns (folder, True if it was already there). Without a cache the entry is built
    under ``tmp_root`` (the caller removes it)."""
    root = cache_dir()
    if root is None:
        if tmp_root is None:
            raise ValueError("the benchmark cache is off (CHURN_BENCH_CACHE=off): pass tmp_root")
        out = Path(tmp_root) / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        build(out)
        return out, False
    final = root / name
    if (final / ".done").exists():
        return final, True
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        build(work)
        (work / ".done").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        shutil.rmtree(final, ignore_errors=True)  # a half-built one from a crash
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final, False


def simulated(
    users: int, days: int, seed: int = 42, partitions: int = 4, tmp_root: Path | None = None
) -> Path:
    """A folder with ``log/`` (the simulated history, file topic ``events``) and ``sim/``
    (the simulator's state), as ``simulate_history`` writes them."""

    def build(out: Path) -> None:
        from pipeline.log import open_log
        from pipeline.simulator import SimConfig, Simulator
        from pipeline.simulator.history import simulate_history

        t = time.perf_counter()
        log = open_log(out / "log", "events", num_partitions=partitions)
        try:
            simulate_history(
                Simulator(SimConfig(users=users, days=days, seed=seed)), log, out / "sim"
            )
        finally:
            log.close()
        print(f"(cache) simulated {users:,} users x {days} days, seed {seed}, in {time.perf_counter() - t:.0f} s",
              flush=True)  # fmt: skip

    folder, hit = entry(
        key("sim", users=users, days=days, seed=seed, partitions=partitions), build, tmp_root
    )
    if hit:
        print(
            f"(cache) the simulation of {users:,} users x {days} days, seed {seed}: {folder}",
            flush=True,
        )
    return folder


def pickled(name: str, make: Callable[[], Any], tmp_root: Path | None = None) -> Any:
    """``make()``'s value, pickled in the cache under ``name``."""

    def build(out: Path) -> None:
        (out / "value.pkl").write_bytes(pickle.dumps(make(), protocol=pickle.HIGHEST_PROTOCOL))

    folder, hit = entry(name, build, tmp_root)
    if hit:
        print(f"(cache) {name}: {folder}", flush=True)
    return pickle.loads((folder / "value.pkl").read_bytes())  # noqa: S301 - our own cache file


def linked_copy(src: Path, dst: Path) -> Path:
    """``src`` copied to ``dst`` with every file a hard link (a real copy across devices)."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link, ignore=shutil.ignore_patterns(".done"))
    return dst
