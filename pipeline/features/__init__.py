"""One feature engine for training and serving.

* :mod:`~pipeline.features.registry` - every feature's name, meaning, window, default;
  ``FEATURE_SET_VERSION``.
* :mod:`~pipeline.features.spec` - ``FeatureSpec``: a topic's features (built-ins its source
  supports + per-action features of its declared vocabulary), versioned by content hash;
  ``spec_for(data_dir, topic)``.
* :mod:`~pipeline.features.timebase` - what "features at time t" means (right-closed days).
* :mod:`~pipeline.features.columns` - events (or raw log values) -> columns.
* :mod:`~pipeline.features.state` - ``FeatureState``: one partition's users; ``update`` /
  ``read`` / ``snapshot`` / ``restore``.
* :mod:`~pipeline.features.engine` - ``FeatureEngine``: a state per partition, the stream's
  ``process`` with dead letters.
* :mod:`~pipeline.features.replay` - the batch path: replay a log, read at cutoffs.

Names are loaded lazily so that importing the CLI's ``register`` does not load numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FEATURES": "registry", "FEATURE_NAMES": "registry", "FEATURE_SET_VERSION": "registry",
    "Feature": "registry", "FeatureSpec": "spec", "Action": "spec", "spec_for": "spec", "DEFAULT_SPEC": "spec",
    "EventColumns": "columns", "decode_columns": "columns", "from_events": "columns",
    "FeatureState": "state", "FeatureFrame": "state", "UpdateResult": "state",
    "FeatureEngine": "engine", "BatchOutcome": "engine", "replay_partition": "replay", "ReplayStats": "replay",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pipeline.features.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pipeline.features' has no attribute {name!r}")
