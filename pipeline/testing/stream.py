"""Test helpers shipped with the library: a small champion and a small event log.

>>> ref = publish_tiny_champion(paths, version="1")          # doctest: +SKIP
>>> log = simulated_log(tmp / "log", users=500, days=20)     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.features.registry import FEATURE_NAMES, FEATURE_SET_VERSION
from pipeline.log.file import FileLog, open_log
from pipeline.stream.config import StreamPaths
from pipeline.stream.model import ModelRef, export_model, publish


def tiny_model(seed: int = 0, rounds: int = 20, name: str = "xgboost", boost: float = 0.0):
    """An XGBoost churn model on random vectors over every registry feature: risk rises
    with inactivity and failed payments (``boost`` shifts the log-odds, so two versions
    give visibly different scores)."""
    import xgboost as xgb

    from pipeline.training.models import XGBoostModel

    rng = np.random.default_rng(seed)
    n = 4_000
    X = pd.DataFrame(rng.gamma(1.5, 3.0, (n, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    X["plan_tier"] = rng.integers(-1, 3, n)
    z = (
        -2.0
        + 0.25 * X["days_since_last_session"]
        + 0.8 * X["payments_failed_30d"]
        - 0.05 * X["sessions_30d"]
        + boost
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    dm = xgb.DMatrix(X.astype(np.float32), label=y, feature_names=list(FEATURE_NAMES))
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": seed,
              "base_score": float(np.clip(y.mean(), 0.05, 0.95))}  # fmt: skip
    booster = xgb.train(params, dm, num_boost_round=rounds)
    model = XGBoostModel(name, booster, tuple(FEATURE_NAMES), rounds - 1)
    model.base_rate = float(y.mean())  # type: ignore[attr-defined]  # exported with it (export_model)
    return model


def publish_tiny_champion(
    paths: StreamPaths,
    version: str = "1",
    feature_set_version: str = FEATURE_SET_VERSION,
    **kw: object,
) -> ModelRef:
    """Export a :func:`tiny_model` as champion ``version`` and point the workers at it."""
    ref = export_model(tiny_model(**kw), version, feature_set_version, paths.models)  # type: ignore[arg-type]
    publish(paths.champion, ref)
    return ref


def simulated_log(root: Path, users: int = 500, days: int = 20, partitions: int = 2, seed: int = 7,
                  topic: str = "events") -> FileLog:  # fmt: skip
    """A file log holding a small simulated history (the real simulator)."""
    from pipeline.simulator import SimConfig, Simulator
    from pipeline.simulator.history import simulate_history

    log = open_log(root, topic, num_partitions=partitions)
    simulate_history(
        Simulator(SimConfig(users=users, days=days, seed=seed)), log, root.parent / "sim"
    )
    return log
