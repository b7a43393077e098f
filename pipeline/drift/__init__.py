"""Feature and prediction drift of the scoring stream against the champion's reference.

* :mod:`~pipeline.drift.config` - ``DriftConfig`` (window, cadence, thresholds, cooldown).
* :mod:`~pipeline.drift.window` - ``DriftWindow``: a ring buffer of scored vectors.
* :mod:`~pipeline.drift.cadence` - when a check is due.
* :mod:`~pipeline.drift.check` - one check with Evidently's lean metrics; the full report.
* :mod:`~pipeline.drift.alerts` - Healthy / Warning / Critical with reasons.
* :mod:`~pipeline.drift.reports` - HTML reports and JSON summaries under ``<data>/drift``.
* :mod:`~pipeline.drift.loop` - the retrain cooldown.
* :mod:`~pipeline.drift.retrain` - the interface through which "retrain wanted, because ..."
  reaches whoever runs the library (``flows/`` supplies the Prefect-event implementation).
* :mod:`~pipeline.drift.monitor` - ``DriftMonitor``: what the stream calls.

Names load lazily: importing this package loads no Evidently; nothing here imports Prefect.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DriftConfig": "config", "DriftWindow": "window", "WindowSnapshot": "window", "Cadence": "cadence",
    "DriftResult": "check", "FeatureDrift": "check", "Skipped": "check", "run_check": "check",
    "render_report": "check", "assess_drift": "alerts", "RetrainCooldown": "loop", "RetrainRequest": "retrain",
    "RetrainRequester": "retrain", "load_requester": "retrain", "DriftMonitor": "monitor", "DriftOutcome": "monitor",
    "drift_dir": "reports",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pipeline.drift.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pipeline.drift' has no attribute {name!r}")
