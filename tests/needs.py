"""Tests that need an outside service (PostgreSQL, Chromium): skipped on a laptop without it,
a failure in CI. ``CI=true`` (set by every CI system, and by `.ci/run`) turns the skip into a
failure, so a green CI run always includes them (issue 16 item 15)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

CHROMIUM = os.environ.get("CHURN_TEST_CHROMIUM", "/usr/bin/chromium")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(what: str, remedy: str) -> NoReturn:
    """Skip the test (fail it under ``CI=true``) because ``what`` is missing."""
    if in_ci():
        pytest.fail(f"{what} - CI=true, so this fails instead of skipping: {remedy}", pytrace=False)
    pytest.skip(f"{what}: {remedy}")


def pg_unavailable(urls: list[str]) -> NoReturn:
    unavailable(f"no PostgreSQL server answers at {', '.join(urls)}",
                "start one (database `test`, trust auth) or set CHURN_TEST_PG_URL")  # fmt: skip


def need_chromium() -> str:
    """The Chromium executable, or skip/fail."""
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing", "apt-get install -y chromium (or set CHURN_TEST_CHROMIUM)")
    return CHROMIUM
