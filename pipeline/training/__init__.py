"""Training: candidate specs (``models/*.yaml``), fitting, comparison, MLflow run layout.

* :mod:`~pipeline.training.specs` - parse and validate one YAML spec per candidate;
* :mod:`~pipeline.training.fit` / :mod:`~pipeline.training.models` - fit a spec into a
  :class:`~pipeline.training.models.ChurnModel` (probabilities, contributions, importance);
* :mod:`~pipeline.training.data` - labelled snapshots split by time (train/val/test, or a
  test window plus rolling-origin folds), the oracle and the leaky control;
* :mod:`~pipeline.training.adapt` - size-dependent hyperparameters, monotone constraints
  only where a feature's direction is known;
* :mod:`~pipeline.training.cv` - time-series cross-validation and noise-aware selection;
* :mod:`~pipeline.training.calibrate` - identity / Platt / isotonic on out-of-fold scores;
* :mod:`~pipeline.training.compare` - refit + calibrate, test metrics, comparison and CV tables;
* :mod:`~pipeline.training.report` - the run's texts, tags and returned summary;
* :mod:`~pipeline.training.gate` - the champion gate as a pure decision (like with like);
* :mod:`~pipeline.training.tracking` / :mod:`~pipeline.training.plots` - MLflow runs and charts;
* :mod:`~pipeline.testing.training` - a synthetic snapshot frame for tests.
"""
