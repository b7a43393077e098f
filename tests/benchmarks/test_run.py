"""``benchmarks.run``: the per-module budget table, the total wall time, and a module that
raises being reported without losing the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.bench_modules import load

ROOT = Path(__file__).resolve().parents[2]


run = load("run")


def test_the_budgets_of_the_listed_modules_fit_the_total_and_name_real_modules():
    assert sum(run.BUDGET_S.values()) <= run.TOTAL_BUDGET_S
    on_disk = {p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(run.BUDGET_S) == on_disk
    assert run.budget("bench_nosuch", quick=False) == run.DEFAULT_BUDGET_S
    assert run.budget("bench_stream", quick=True) == run.BUDGET_S["bench_stream"] / 4


def test_a_run_prints_the_budget_table_and_total_and_records_them(tmp_path, capsys, monkeypatch):
    (tmp_path / "bench_fast.py").write_text("def run(quick=False):\n    return {'fast_x': 1.0}\n")
    (tmp_path / "bench_slow.py").write_text(
        "import time\ndef run(quick=False):\n    time.sleep(0.3)\n    return {'slow_x': 2.0}\n"
    )
    monkeypatch.setitem(run.BUDGET_S, "bench_slow", 0.1)
    assert run.main([], root=tmp_path) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("bench_")}
    assert rows["bench_slow"].endswith("OVER") and not rows["bench_fast"].endswith("OVER")
    assert "total wall time" in out and "2 module(s)" in out
    prov = json.loads((tmp_path / "provenance.json").read_text())["full"]
    assert prov["modules"]["bench_slow"]["budget"] == 0.1
    assert prov["modules"]["bench_slow"]["seconds"] >= 0.3
    # CPU seconds beside the wall seconds (a sleep costs next to none): a loaded run can be judged
    assert 0.0 <= prov["modules"]["bench_slow"]["cpu_s"] < prov["modules"]["bench_slow"]["seconds"]
    assert "CPU s" in out
    last = prov["last_run"]
    assert last["modules"] == ["bench_fast", "bench_slow"] and last["failed"] == []
    assert last["total_seconds"] >= 0.3 and last["total_budget_s"] == run.TOTAL_BUDGET_S


def test_a_module_that_raises_is_reported_and_the_others_still_write_their_figures(
    tmp_path, capsys
):
    (tmp_path / "results.json").write_text('{"bad_x": 7.0}')
    (tmp_path / "bench_bad.py").write_text(
        "def run(quick=False):\n    raise ValueError('broken input')\n"
    )
    (tmp_path / "bench_good.py").write_text("def run(quick=False):\n    return {'good_x': 3.0}\n")
    assert run.main(["bad", "good"], root=tmp_path) == 1
    captured = capsys.readouterr()
    assert "ValueError: broken input" in captured.err and "FAILED: bench_bad" in captured.err
    assert json.loads((tmp_path / "results.json").read_text()) == {"bad_x": 7.0, "good_x": 3.0}
    prov = json.loads((tmp_path / "provenance.json").read_text())["full"]
    assert prov["modules"]["bench_bad"]["error"] == "ValueError: broken input"
    assert prov["modules"]["bench_bad"]["figures"] == []
    assert prov["last_run"]["failed"] == ["bench_bad"]


def test_help_and_unknown_options_run_nothing(tmp_path, capsys):
    (tmp_path / "bench_a.py").write_text(
        "def run(quick=False):\n    raise AssertionError('must not run')\n"
    )
    assert run.main(["--help"], root=tmp_path) == 0
    assert "make bench" in capsys.readouterr().out
    assert run.main(["--quik"], root=tmp_path) == 2
    assert "unknown option" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "provenance.json").exists()


def test_an_interrupted_run_keeps_the_figures_of_the_modules_before(tmp_path):
    (tmp_path / "bench_a.py").write_text("def run(quick=False):\n    return {'a_x': 1.0}\n")
    (tmp_path / "bench_b.py").write_text("def run(quick=False):\n    raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        run.main([], root=tmp_path)
    assert json.loads((tmp_path / "results.json").read_text()) == {"a_x": 1.0}
    prov = json.loads((tmp_path / "provenance.json").read_text())["full"]
    assert set(prov["modules"]) == {"bench_a"}


def test_a_run_turns_the_bytecode_cache_on_for_its_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    (tmp_path / "bench_env.py").write_text(
        "import os, sys\n"
        "def run(quick=False):\n"
        "    return {'env_set': float('PYTHONDONTWRITEBYTECODE' in os.environ),\n"
        "            'dont_write': float(sys.dont_write_bytecode)}\n"
    )
    assert run.main([], root=tmp_path) == 0
    assert json.loads((tmp_path / "results.json").read_text()) == {
        "env_set": 0.0,
        "dont_write": 0.0,
    }
