"""Dashboard fixtures: one small *real* run per session (simulate -> train + register ->
stream until caught up -> drift checks, see :mod:`tests.dashboard.realrun`), a fresh
install, and a store that exists but is empty; all point the app at their data through
CHURN_* env vars."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.dashboard.realrun import QUIET, build

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Env vars of the real run's data dir + registry, and facts read back from them."""
    root = tmp_path_factory.mktemp("dash-real")
    old = {k: os.environ.get(k) for k in QUIET}
    t0 = time.monotonic()
    try:
        run = build(root)
        print(f"dashboard fixture: real run built in {time.monotonic() - t0:.1f} s")
        # the real run ended before the pages are read: judge it as a live stream here (what the
        # pages show of a live one); test_stale.py covers a stopped stream
        env = {"CHURN_DATA_DIR": str(run["data_dir"]), "CHURN_MLFLOW_TRACKING_URI": run["uri"],
               "CHURN_DASHBOARD_STALE_AFTER_S": "1e9"}
        yield {"env": env, "root": root, **run}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def chromium_exe() -> str:
    """Checked before the (slow) real run starts: a skip on a laptop, a failure under CI=true."""
    from tests.needs import need_chromium

    return need_chromium()


@pytest.fixture(scope="session")
def empty(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh install: no data dir, no store, no registry (none of them get created)."""
    root = tmp_path_factory.mktemp("dash-empty")
    env = {
        "CHURN_DATA_DIR": str(root / "data"),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
    }
    return {"env": env, "root": root}


@pytest.fixture(scope="session")
def blank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store that exists but holds nothing yet (the stream just started)."""
    from pipeline.store import Store

    root = tmp_path_factory.mktemp("dash-blank")
    (root / "data").mkdir()
    Store(f"sqlite:///{root / 'data' / 'churn.db'}").close()
    env = {
        "CHURN_DATA_DIR": str(root / "data"),
        "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
    }
    return {"env": env, "root": root}


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    def apply(env: dict[str, str]) -> None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("CHURN_STORE_URL", raising=False)
        monkeypatch.chdir(REPO)

    yield apply
