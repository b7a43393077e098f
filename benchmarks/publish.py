"""The figures README and docs quote come from ``benchmarks/published.json``, never typed.

``published.json`` is committed: a copy of a full run's ``results.json`` plus its
``provenance.json`` entry. The documents carry marker blocks::

    <!-- bench:stream -->
    ...generated text...
    <!-- /bench:stream -->

whose text :func:`render` generates from ``published.json`` with the templates below.
``tests/benchmarks/test_publish.py`` fails when a document's block differs from the
rendering (so CI, which never has a ``results.json``, still checks that the docs say
what the committed figures say).

    python -m benchmarks.publish            # results.json (+ provenance) -> published.json, re-render docs
    python -m benchmarks.publish --quick    # the same from results-quick.json (the docs then say "quick run")
    python -m benchmarks.publish --render   # only re-render the docs from published.json
    python -m benchmarks.publish --check    # exit 1 if a document is out of date
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "benchmarks" / "published.json"
DOCS = ("README.md", "docs/drift.md", "docs/scale-out.md")
_BLOCK = re.compile(r"(<!-- bench:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


class _Figures:
    """Figure lookup for templates: formats a number, or says it was not measured."""

    def __init__(self, figures: Mapping[str, float]) -> None:
        self.f = figures

    def n(self, key: str, digits: int = 0, scale: float = 1.0, unit: str = "") -> str:
        v = self.f.get(key)
        if v is None:
            return "n/a (not measured)"
        return f"{v * scale:,.{digits}f}{unit}"

    def k(self, key: str) -> str:
        """Thousands, e.g. ``92k``."""
        return self.n(key, 0, 1e-3, "k")

    def ratio(self, a: str, b: str, digits: int = 2) -> str:
        x, y = self.f.get(a), self.f.get(b)
        return "n/a" if x is None or not y else f"{x / y:,.{digits}f}x"


def _source(pub: Mapping[str, Any], modules: tuple[str, ...]) -> str:
    prov = pub.get("provenance", {})
    entries = [prov.get("modules", {}).get(m) for m in modules]
    entries = [e for e in entries if e]
    if not entries:
        return "provenance not recorded"
    e = entries[0]
    load = f"load average {e['load_before'][0]:.1f} -> {e['load_after'][0]:.1f}"
    mode = "quick run" if e.get("quick") else "full run"
    cpu = (e.get("machine") or prov.get("machine", {})).get("cpu_model", "unknown CPU")  # modules may come from other runs
    commit = e["commit"][:10] + (" with uncommitted changes" if e["commit"].endswith("+dirty") else "")
    probe = e.get("speed_probe_ms_before")  # recorded since 2026-12-04
    speed = "" if probe is None else f", speed probe {probe:.0f} ms"
    return f"{mode} of {commit}, {e['started_utc'][:10]}, {cpu}, {load}{speed}"


def _quick(pub: Mapping[str, Any], module: str) -> bool:
    return bool(pub.get("provenance", {}).get("modules", {}).get(module, {}).get("quick"))


def _wrap(text: str) -> str:
    return "\n".join(textwrap.fill(p, 90, break_on_hyphens=False) for p in text.split("\n") if p) + "\n"


def _stream(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    size = "200k simulator events of 20k" if _quick(pub, "bench_stream") else "1 M simulator events of 100k"
    return _wrap(
        f"Throughput on one worker (`python -m benchmarks.bench_stream`: {size} subscribed users, "
        f"production defaults - drift on, reasons on, daily score history, the champion fitted on "
        f"the default simulation - SQLite store; from the first fetch to the last score durable and "
        f"the checkpoint committed, CPU of every process and thread): {f.k('stream_eps')} events per "
        f"CPU-second at batches of 1,000 (p99 {f.n('stream_p99_batch_ms_1k', 0)} ms from fetch to "
        f"scores accepted by the store writer, waits included) and {f.k('stream_eps_10k')} at 10,000 "
        f"(p99 {f.n('stream_p99_batch_ms_10k', 0)} ms); "
        f"{f.n('stream_eps_per_decode_floor', 4)} of the decode floor "
        f"({f.k('stream_decode_floor_eps')} events/s); {f.ratio('stream_eps', 'stream_incremental_eps')} "
        f"a per-user-dict incremental baseline ({f.k('stream_incremental_eps')}) and "
        f"{f.n('stream_speedup_vs_naive', 0)}x the naive per-event one; "
        f"{f.n('stream_rss_mb_per_100k_users', 0)} MB per 100k users; predict (the compiled trees, "
        f"batches of 900) {f.k('stream_predict_rows_per_s')} rows/s vs XGBoost's "
        f"{f.k('stream_predict_xgboost_rows_per_s')}, the same scores. Store upserts of 10,000 "
        f"distinct users with the daily history point (scores only in brackets), rows per CPU "
        f"second: SQLite {f.k('store_sqlite_upsert_rows_per_cpu_s')} "
        f"({f.k('store_sqlite_upsert_scores_only_rows_per_cpu_s')}), PostgreSQL client + backend "
        f"{f.k('store_pg_upsert_rows_per_cpu_s')} ({f.k('store_pg_upsert_scores_only_rows_per_cpu_s')}); "
        f"wall-clock SQLite {f.k('store_sqlite_upsert_rows_per_s')} "
        f"({f.k('store_sqlite_upsert_scores_only_rows_per_s')}), PostgreSQL "
        f"{f.k('store_pg_upsert_rows_per_s')} ({f.k('store_pg_upsert_scores_only_rows_per_s')}); "
        f"scores only, against the usual way measured batch by batch beside it on the same table "
        f"(PostgreSQL: psycopg's COPY into a staging table and one INSERT .. ON CONFLICT; SQLite: "
        f"an executemany of a one-row upsert): PostgreSQL {f.n('store_pg_upsert_vs_usual', 2)}x "
        f"({f.k('store_pg_upsert_usual_rows_per_s')}), SQLite {f.n('store_sqlite_upsert_vs_usual', 2)}x "
        f"({f.k('store_sqlite_upsert_usual_rows_per_s')}).\n"
        f"Source: `benchmarks/published.json` ({_source(pub, ('bench_stream', 'bench_store'))})."
    )


def _import(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    rows = "200k" if _quick(pub, "bench_import") else "1M"
    return _wrap(
        f"Import rate: {f.k('import_rows_per_s')} rows/s per core on a {rows}-row CSV where every "
        f"row becomes an event ({f.k('import_drop_rows_per_s')} rows/s on the real page mix, where "
        f"the drop rule skips ~38 % of the rows; the raw parse rate is "
        f"{f.k('csv_parse_floor_rows_per_s')} rows/s), peak {f.n('import_peak_rss_mb', 0)} MB "
        f"(`python -m benchmarks.bench_import`; {_source(pub, ('bench_import',))})."
    )


def _drift(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    return (
        "| figure | value |\n|---|---|\n"
        f"| one lean check, 10,000 x 30 window vs 10,000 x 30 reference + risk (`drift_check_seconds`) "
        f"| {f.n('drift_check_seconds', 1)} s (target <= 5 s) |\n"
        f"| full HTML report of the same (`drift_report_seconds`) | {f.n('drift_report_seconds', 1)} s |\n"
        f"| check process peak RSS (`drift_check_peak_rss_mb`) | {f.n('drift_check_peak_rss_mb', 0)} MB |\n"
        f"| stream, one worker, checks back to back: events per CPU second of every process (worker "
        f"and drift check child), on vs off (`stream_eps_drift_on` / `_off`) | {f.k('stream_eps_drift_on')} "
        f"vs {f.k('stream_eps_drift_off')} = {f.ratio('stream_eps_drift_on', 'stream_eps_drift_off')} |\n"
        "\n" + _wrap(f"Source: `benchmarks/published.json` ({_source(pub, ('bench_drift',))}).")
    )


def _multihost(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    return (
        "| figure | value | definition |\n|---|---|---|\n"
        f"| `multihost_failover_seconds` | {f.n('multihost_failover_seconds', 1, unit=' s')} (default lease TTL 15 s) "
        "| SIGKILL -> the survivor owns the dead host's partitions **and** has committed progress on them; "
        "bounded by the TTL + a heartbeat + a checkpoint |\n"
        f"| `multihost_stream_eps` | {f.n('multihost_stream_eps', 0)} events/s | 2 hosts, one worker each, wall clock "
        "from the first produce to every offset committed at its end |\n"
        f"| `multihost_stream_eps_1_host` | {f.n('multihost_stream_eps_1_host', 0)} events/s | the same with one host, "
        f"same forwarders, same run (ratio {f.ratio('multihost_stream_eps', 'multihost_stream_eps_1_host')}) |\n"
        "\n" + _wrap(f"Source: `benchmarks/published.json` ({_source(pub, ('bench_multihost',))}).")
    )


def _alarms(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    return _wrap(
        f"No-drift false alarms (`python -m benchmarks.run drift_alarms`, 5 seeds): "
        f"`drift_false_alarm_warning_share` {f.n('drift_false_alarm_warning_share', 4)} of "
        f"{f.n('drift_false_alarm_checks', 0)} daily checks at Warning (target <= 0.071), "
        f"`drift_false_alarm_critical` {f.n('drift_false_alarm_critical', 0)} Critical "
        f"({_source(pub, ('bench_drift_alarms',))})."
    )


def _loop(pub: Mapping[str, Any]) -> str:
    f = _Figures(pub["figures"])
    return _wrap(
        f"`realised_auc_recovery` (realised ROC-AUC after the retrain minus during the drift episode, "
        f"`python -m benchmarks.run drift_loop`): {f.n('realised_auc_recovery', 3)}; the old model's "
        f"realised ROC-AUC fell by {f.n('realised_auc_drift_drop', 3)} during the episode; the retrain "
        f"came {f.n('loop_retrain_days_after_onset', 0)} days after the onset "
        f"({_source(pub, ('bench_drift_loop',))})."
    )


TEMPLATES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "alarms": _alarms,
    "loop": _loop,
    "multihost": _multihost,
    "stream": _stream,
    "import": _import,
    "drift": _drift,
}


def load(path: Path = PUBLISHED) -> dict[str, Any]:
    return json.loads(path.read_text())


def render(text: str, pub: Mapping[str, Any]) -> str:
    """``text`` with every ``bench:NAME`` block regenerated from ``pub``."""

    def block(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in TEMPLATES:
            raise KeyError(f"unknown bench block {name!r}: add a template to benchmarks/publish.py")
        return m.group(1) + TEMPLATES[name](pub) + m.group(4)

    return _BLOCK.sub(block, text)


def blocks(text: str) -> list[str]:
    return [m.group("name") for m in _BLOCK.finditer(text)]


def publish(root: Path = ROOT, quick: bool = False) -> dict[str, Any]:
    """``results.json`` (``quick``: ``results-quick.json``) + that mode's provenance ->
    ``published.json``; the rendered text names the mode of each module's run."""
    results = root / "benchmarks" / ("results-quick.json" if quick else "results.json")
    if not results.exists():
        raise SystemExit(
            f"{results} does not exist: run `make bench` (the full run) first"
            + ("" if quick else "; `--quick` publishes results-quick.json, marked as a quick run")
        )
    prov_file = root / "benchmarks" / "provenance.json"
    mode = "quick" if quick else "full"
    every = json.loads(prov_file.read_text()) if prov_file.exists() else {}
    prov = every.get(mode, {})
    figures = json.loads(results.read_text())
    quick_file = root / "benchmarks" / "results-quick.json"
    if not quick and quick_file.exists():
        # modules the full run did not cover: their quick figures, marked quick per module
        quick_figures = json.loads(quick_file.read_text())
        for name, entry in every.get("quick", {}).get("modules", {}).items():
            if name in prov.get("modules", {}):
                continue
            prov.setdefault("modules", {})[name] = entry
            figures |= {k: quick_figures[k] for k in entry["figures"] if k in quick_figures}
    for entry in prov.get("modules", {}).values():  # each module names the machine it ran on
        entry.setdefault("machine", prov.get("machine", {}))
    pub = {"figures": figures, "provenance": prov}
    (root / "benchmarks" / "published.json").write_text(json.dumps(pub, indent=2, sort_keys=True) + "\n")
    return pub


def main(argv: list[str], root: Path = ROOT) -> int:
    if "--check" not in argv and "--render" not in argv:
        publish(root, quick="--quick" in argv)
    pub = load(root / "benchmarks" / "published.json")
    stale = []
    for name in DOCS:
        path = root / name
        text = path.read_text()
        new = render(text, pub)
        if new != text:
            stale.append(name)
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv and stale:
        print(f"out of date with benchmarks/published.json: {', '.join(stale)}; run "
              "`python -m benchmarks.publish --render`", file=sys.stderr)  # fmt: skip
        return 1
    print("documents rendered from benchmarks/published.json" + (f": {', '.join(stale)}" if stale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
