"""With CI=true a missing PostgreSQL or Chromium fails the run; without it, it is a skip
(issue 16 item 15). Runs pytest on two real tests with both services pointed at nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODES = ["tests/store/test_store_open.py::test_postgresql_url_without_driver_means_psycopg",
         "tests/dashboard/test_browser.py::test_fresh_install_says_what_to_run"]  # fmt: skip
NOWHERE = {"CHURN_TEST_PG_URL": "postgresql+psycopg://nobody@127.0.0.1:9/test",
           "CHURN_TEST_CHROMIUM": "/nonexistent/chromium"}  # fmt: skip


def _pytest(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")} | NOWHERE
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsfE", "-p", "no:cacheprovider", *NODES],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_missing_services_fail_in_ci_and_skip_elsewhere() -> None:
    ci = _pytest("true")
    assert ci.returncode == 1, ci.stdout[-3000:]
    assert "1 failed, 1 error" in ci.stdout and "skipped" not in ci.stdout  # error: a fixture failed
    assert "no PostgreSQL server answers at postgresql+psycopg://nobody@127.0.0.1:9/test" in ci.stdout
    assert "/nonexistent/chromium is missing" in ci.stdout and "CI=true" in ci.stdout
    laptop = _pytest(None)
    assert laptop.returncode == 0, laptop.stdout[-3000:]
    assert "2 skipped" in laptop.stdout


def _ci_run(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_TEST_")}
    return subprocess.run(["bash", str(REPO / ".ci" / "run")], cwd=REPO, env=base | env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def test_ci_run_fails_early_without_chromium_or_postgresql() -> None:
    no_browser = _ci_run(CHURN_TEST_CHROMIUM="/nonexistent/chromium")
    assert no_browser.returncode == 1
    assert "error: /nonexistent/chromium is missing" in no_browser.stderr
    assert "make" not in no_browser.stdout  # before the tests, not after ~7 minutes of them
    no_pg = _ci_run(CHURN_TEST_CHROMIUM="/bin/true", CHURN_TEST_PG_URL="postgresql+psycopg://x@127.0.0.1:9/test")
    assert no_pg.returncode == 1
    assert "error: no PostgreSQL server answers at 127.0.0.1:9" in no_pg.stderr
