"""Training: candidate specs (``models/*.yaml``), fitting, comparison, MLflow run layout.

* :mod:`~pipeline.training.specs` - parse and validate one YAML spec per candidate;
* :mod:`~pipeline.training.fit` / :mod:`~pipeline.training.models` - fit a spec into a
  :class:`~pipeline.training.models.ChurnModel` (probabilities, contributions, importance);
* :mod:`~pipeline.training.data` - labelled snapshots split by time, the oracle and the
  leaky control;
* :mod:`~pipeline.training.compare` - score on val/test, pick the best, comparison table;
* :mod:`~pipeline.training.gate` - the champion gate as a pure decision;
* :mod:`~pipeline.training.tracking` / :mod:`~pipeline.training.plots` - MLflow runs and charts;
* :mod:`~pipeline.testing.training` - a synthetic snapshot frame for tests.
"""
