"""The local stack: Prefect server, served deployments, MLflow UI and dashboard as one unit.

`churn up` / `churn status` / `churn down` (:mod:`churn.cli.stack`) drive
:mod:`churn.stack.stack`; services are declared in :mod:`churn.stack.services`,
processes handled in :mod:`churn.stack.procs`, the pid record kept by
:mod:`churn.stack.state`. Nothing here imports Prefect, MLflow or Streamlit: they run
as separate processes, reached over HTTP on 127.0.0.1.
"""
