"""``benchmarks/cache.py``: shared benchmark inputs are built once per key and code version,
never half-written, and can be turned off."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.bench_modules import load

ROOT = Path(__file__).resolve().parents[2]


cache = load("cache")


def test_an_entry_is_built_once_and_then_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_BENCH_CACHE", str(tmp_path / "c"))
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "x").write_text("built")

    first, hit1 = cache.entry("thing", build)
    second, hit2 = cache.entry("thing", build)
    assert (hit1, hit2) == (False, True) and first == second and len(calls) == 1
    assert (first / "x").read_text() == "built"
    assert cache.pickled("val", lambda: {"a": 1}) == {"a": 1}
    assert cache.pickled("val", lambda: pytest.fail("built twice")) == {"a": 1}


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_BENCH_CACHE", str(tmp_path / "c"))

    def broken(out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("simulator crashed")

    with pytest.raises(RuntimeError, match="simulator crashed"):
        cache.entry("thing", broken)
    assert list((tmp_path / "c").iterdir()) == []
    folder, hit = cache.entry("thing", lambda out: (out / "ok").write_text("y"))
    assert not hit and (folder / "ok").exists() and not (folder / "partial").exists()


def test_off_builds_under_the_callers_folder_every_time(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_BENCH_CACHE", "off")
    assert cache.cache_dir() is None
    with pytest.raises(ValueError, match="tmp_root"):
        cache.entry("thing", lambda out: None)
    folder, hit = cache.entry("thing", lambda out: (out / "y").write_text("1"), tmp_root=tmp_path)
    assert not hit and folder.parent == tmp_path and (folder / "y").exists()


def test_keys_carry_the_parameters_and_the_code_version(tmp_path):
    a = cache.key("sim", users=10, days=5)
    assert a == cache.key("sim", days=5, users=10) != cache.key("sim", users=11, days=5)
    assert a.endswith(cache.code_version())
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "m.py").write_text("x = 1\n")
    before = cache.code_version(tmp_path)
    (tmp_path / "pipeline" / "m.py").write_text("x = 2\n")
    cache.code_version.cache_clear()
    assert cache.code_version(tmp_path) != before


def test_a_linked_copy_shares_the_files_and_skips_the_marker(tmp_path):
    src = tmp_path / "src"
    (src / "log" / "p0").mkdir(parents=True)
    (src / "log" / "p0" / "seg.log").write_text("line\n")
    (src / ".done").write_text("t")
    dst = cache.linked_copy(src, tmp_path / "dst")
    assert (dst / "log" / "p0" / "seg.log").read_text() == "line\n"
    assert not (dst / ".done").exists()
    assert (dst / "log" / "p0" / "seg.log").stat().st_ino == (
        src / "log" / "p0" / "seg.log"
    ).stat().st_ino
