"""Dashboard fixtures: one populated data dir + MLflow registry per session, and an
empty (fresh-install) environment; both point the app at them through CHURN_* env vars."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.dashboard.sample import build

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Env vars of a populated data dir + registry, and facts about the data."""
    root = tmp_path_factory.mktemp("dash-populated")
    had = "MLFLOW_DISABLE_TELEMETRY" in os.environ
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network from tests
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    facts = build(root / "data", uri)
    env = {"CHURN_DATA_DIR": str(root / "data"), "CHURN_MLFLOW_TRACKING_URI": uri}
    yield {"env": env, **facts}
    if not had:
        os.environ.pop("MLFLOW_DISABLE_TELEMETRY", None)


@pytest.fixture(scope="session")
def empty(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh install: no data dir, no store, no registry (none of them get created)."""
    root = tmp_path_factory.mktemp("dash-empty")
    env = {"CHURN_DATA_DIR": str(root / "data"),
           "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    return {"env": env, "root": root}


@pytest.fixture(scope="session")
def blank(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store that exists but holds nothing yet (the stream just started)."""
    from pipeline.store import Store

    root = tmp_path_factory.mktemp("dash-blank")
    (root / "data").mkdir()
    Store(f"sqlite:///{root / 'data' / 'churn.db'}").close()
    env = {"CHURN_DATA_DIR": str(root / "data"),
           "CHURN_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    return {"env": env, "root": root}


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], None]]:
    def apply(env: dict[str, str]) -> None:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("CHURN_STORE_URL", raising=False)
        monkeypatch.chdir(REPO)

    yield apply
