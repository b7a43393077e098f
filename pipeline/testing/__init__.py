"""Test helpers shipped with the library: public, for users writing their own tests.

Like Bytewax's ``testing`` module or Quix's ``sdf.test()``: a streaming test should be a
dozen lines, list in and list out, with no server, no network and no downloads.

========================================= ================================================
helper                                    what it gives you
========================================= ================================================
:class:`FakeClock`                        injected time with ``.advance(seconds)``
:class:`MemoryLog`                        an in-memory partition log (the file log's contract)
:func:`tiny_model`                        a small XGBoost champion on random data (seeded)
:func:`publish_tiny_champion`             that model exported and published for a stream
:func:`simulated_log`                     a small simulated event history in a file log
:func:`synthetic_snapshots`,              a labelled snapshot table with a known signal, and
:func:`split_by_cutoff`                   its temporal split (training tests)
:func:`scenario_frames`,                  feature frames before/after a drift scenario; a
:func:`stream_checks`                     whole simulate -> train -> stream-with-drift run
:class:`MockCluster`                      librdkafka's in-process Kafka broker (127.0.0.1)
:class:`HostNetwork`,                     "hosts" as network namespaces on a bridge (root),
:class:`TcpForwarder`                     a 127.0.0.1 service exposed on the bridge address
========================================= ================================================

>>> from pipeline.testing import FakeClock, MemoryLog
>>> clock = FakeClock()
>>> log = MemoryLog("events", num_partitions=2)
>>> log.num_partitions
2

Names load lazily: ``import pipeline.testing`` pulls in neither XGBoost nor Kafka.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FakeClock": "pipeline.clock",
    "MemoryLog": "pipeline.log.memory",
    "tiny_model": "pipeline.testing.stream",
    "publish_tiny_champion": "pipeline.testing.stream",
    "simulated_log": "pipeline.testing.stream",
    "synthetic_snapshots": "pipeline.testing.training",
    "split_by_cutoff": "pipeline.testing.training",
    "scenario_frames": "pipeline.testing.drift",
    "stream_checks": "pipeline.testing.drift",
    "StreamedCheck": "pipeline.testing.drift",
    "MockCluster": "pipeline.testing.kafka",
    "MOCK_AUTO_PARTITIONS": "pipeline.testing.kafka",
    "HostNetwork": "pipeline.testing.netns",
    "TcpForwarder": "pipeline.testing.netns",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline.testing' has no attribute {name!r}")
