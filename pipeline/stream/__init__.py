"""Real-time scoring: a supervised consumer group of worker processes.

* :mod:`~pipeline.stream.config` - ``StreamConfig`` (batch size, max wait, checkpoint and
  flush intervals, group size, autoscaling) and ``StreamPaths`` (files of one group);
* :mod:`~pipeline.stream.worker` - ``Worker``: the micro-batch loop over owned partitions;
  ``python -m pipeline.stream.worker`` is its process entry point;
* :mod:`~pipeline.stream.partition` - taking a partition over: lease, checkpoint, dead letters;
* :mod:`~pipeline.stream.checkpoint` - atomic per-partition checkpoints (state + offset)
  and the ``flock`` lease that fences ownership;
* :mod:`~pipeline.stream.scorer` / :mod:`~pipeline.stream.model` - champion exports,
  one ``predict`` per batch, top reasons for high-risk users;
* :mod:`~pipeline.stream.sink` - the background writer (coalesced score upserts, metrics,
  checkpoints in order, heartbeats);
* :mod:`~pipeline.stream.metrics` / :mod:`~pipeline.stream.health` - ``StreamMetric`` rows,
  the alert level;
* :mod:`~pipeline.stream.champion` / :mod:`~pipeline.stream.supervisor` - the registry
  side and the process supervisor (restarts, rebalancing, autoscaling, drain);
* :mod:`~pipeline.testing.stream` - a tiny champion and a small simulated log for tests.

Exactly-once effect: feature state and offsets are checkpointed together, per partition,
atomically; a checkpoint is written only after every score before it is in the store;
score upserts are idempotent (and never go back in event time). A worker killed at any
instant resumes from its checkpoint, and the end result equals an uninterrupted run.

Nothing here imports Prefect; ``flows/stream.py`` wires it into the ``stream`` flow.
"""
