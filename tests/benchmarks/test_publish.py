"""Benchmark figures in README/docs come from the committed ``benchmarks/published.json``;
``benchmarks.run`` records provenance and keeps quick runs out of ``results.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.bench_modules import load

ROOT = Path(__file__).resolve().parents[2]


publish, run = load("publish"), load("run")


def test_documents_quote_exactly_the_published_figures():
    pub = publish.load()
    for name in publish.DOCS:
        text = (ROOT / name).read_text()
        assert text == publish.render(text, pub), (
            f"{name} is out of date with benchmarks/published.json: run "
            "`python -m benchmarks.publish --render`"
        )
    assert publish.main(["--check"]) == 0


def test_the_figures_blocks_are_where_the_docs_quote_figures():
    assert publish.blocks((ROOT / "README.md").read_text()) == ["stream", "import"]
    assert publish.blocks((ROOT / "docs/drift.md").read_text()) == ["alarms", "loop", "drift"]
    assert publish.blocks((ROOT / "docs/scale-out.md").read_text()) == ["multihost"]
    figures = publish.load()["figures"]
    for key in ("stream_eps", "stream_p99_batch_ms_1k", "stream_incremental_eps",
                "store_sqlite_upsert_rows_per_s", "import_rows_per_s", "stream_eps_drift_on",
                "multihost_failover_seconds", "multihost_stream_eps", "drift_false_alarm_warning_share",
                "realised_auc_recovery"):
        assert key in figures


def test_a_changed_figure_changes_the_rendering_and_a_missing_one_says_so():
    pub = publish.load()
    doc = "<!-- bench:stream -->\nold text\n<!-- /bench:stream -->\n"
    once = publish.render(doc, pub)
    assert "old text" not in once and publish.render(once, pub) == once  # idempotent
    moved = {**pub, "figures": {**pub["figures"], "stream_eps": 123_456.0}}
    assert "123k events per CPU-second" in " ".join(publish.render(doc, moved).split())
    gone = {**pub, "figures": {k: v for k, v in pub["figures"].items() if k != "stream_eps"}}
    assert "n/a (not measured) events per CPU-second" in " ".join(publish.render(doc, gone).split())
    with pytest.raises(KeyError, match="unknown bench block"):
        publish.render("<!-- bench:nope -->\nx\n<!-- /bench:nope -->", pub)


def test_publish_takes_a_full_run_or_says_it_is_a_quick_one(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "results-quick.json").write_text('{"stream_eps": 5.0}')
    with pytest.raises(SystemExit, match="run `make bench`"):
        publish.publish(tmp_path)
    entry = {"commit": "abc123", "started_utc": "2026-12-03T10:00:00+00:00", "quick": True,
             "load_before": [3.0, 2.0, 1.0], "load_after": [4.0, 2.0, 1.0]}  # fmt: skip
    prov = {"quick": {"machine": {"cpu_model": "Some CPU"}, "modules": {"bench_stream": entry}}}
    (tmp_path / "benchmarks" / "provenance.json").write_text(json.dumps(prov))
    pub = publish.publish(tmp_path, quick=True)
    assert json.loads((tmp_path / "benchmarks" / "published.json").read_text()) == pub
    text = " ".join(publish.render("<!-- bench:stream -->\n<!-- /bench:stream -->", pub).split())
    assert "quick run of abc123, 2026-12-03, Some CPU, load average 3.0 -> 4.0" in text
    assert "200k simulator events of 20k" in text


def _fake_bench(root: Path, name: str, value: float) -> None:
    (root / f"bench_{name}.py").write_text(
        f"def run(quick=False):\n    return {{'{name}_x': {value} + (1 if quick else 0)}}\n"
    )


def test_quick_runs_never_touch_results_json_and_provenance_is_recorded(tmp_path):
    _fake_bench(tmp_path, "a", 10.0)
    _fake_bench(tmp_path, "b", 20.0)
    assert run.main([], root=tmp_path) == 0
    full = (tmp_path / "results.json").read_text()
    assert json.loads(full) == {"a_x": 10.0, "b_x": 20.0}
    assert run.main(["--quick", "a"], root=tmp_path) == 0
    assert (tmp_path / "results.json").read_text() == full  # untouched
    assert json.loads((tmp_path / "results-quick.json").read_text()) == {"a_x": 11.0}
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert set(prov["full"]["modules"]) == {"bench_a", "bench_b"}
    assert set(prov["quick"]["modules"]) == {"bench_a"}
    entry = prov["quick"]["modules"]["bench_a"]
    assert entry["quick"] is True and entry["figures"] == ["a_x"]
    assert len(entry["load_before"]) == 3 and len(entry["load_after"]) == 3
    assert 0 < entry["speed_probe_ms_before"] < 60_000 and 0 < entry["speed_probe_ms_after"] < 60_000
    assert entry["started_utc"].endswith("+00:00") and entry["commit"]
    assert prov["full"]["machine"]["cpu_model"] and prov["full"]["machine"]["cpus"] >= 1
    assert run.main(["nosuch"], root=tmp_path) == 2


def test_a_full_publication_fills_modules_it_lacks_from_the_quick_run_marked_quick(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "results.json").write_text('{"stream_eps": 80000.0}')
    (bench / "results-quick.json").write_text('{"stream_eps": 1.0, "import_rows_per_s": 135000.0}')
    entry = {"commit": "abc123", "started_utc": "2026-12-03T10:00:00+00:00",
             "load_before": [3.0, 2.0, 1.0], "load_after": [4.0, 2.0, 1.0]}  # fmt: skip
    prov = {
        "full": {"modules": {"bench_stream": entry | {"quick": False, "figures": ["stream_eps"]}}},
        "quick": {"modules": {
            "bench_stream": entry | {"quick": True, "figures": ["stream_eps"]},
            "bench_import": entry | {"quick": True, "figures": ["import_rows_per_s"]},
        }},
    }  # fmt: skip
    (bench / "provenance.json").write_text(json.dumps(prov))
    pub = publish.publish(tmp_path)
    assert pub["figures"] == {"stream_eps": 80000.0, "import_rows_per_s": 135000.0}
    flat = " ".join(publish.render("<!-- bench:import -->\n<!-- /bench:import -->", pub).split())
    assert "135k rows/s" in flat and "quick run of abc123" in flat
    flat = " ".join(publish.render("<!-- bench:stream -->\n<!-- /bench:stream -->", pub).split())
    assert "80k events per CPU-second" in flat and "full run of abc123" in flat
