"""The application: the ``churn`` command line and the local stack.

The composition root, above the three layers it wires together (see docs/architecture.md):
``churn.cli`` (one thin module per command group) and ``churn.stack`` (``churn up/status/down``
and ``churn demo``: Prefect server, served deployments, MLflow UI and dashboard as processes).
"""
