"""Monitoring with ground truth: how the champion actually did once labels matured.

* :mod:`~pipeline.monitoring.realised` - per scoring day, the scores the stream had
  published joined with the cancels of the following horizon: realised ROC-AUC, PR-AUC,
  lift@10 %, ECE and base rate with bootstrap intervals (pure functions).
* :mod:`~pipeline.monitoring.lifecycle` - signups and cancels read from the event log.
* :mod:`~pipeline.monitoring.update` - the incremental job: matured days not yet in the
  store are computed, stored and logged to each model version's MLflow run.

Nothing here imports Prefect; ``flows/realised.py`` schedules :func:`update.update_realised`.
"""
