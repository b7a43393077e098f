"""The local stack: Prefect server, served deployments, MLflow UI and dashboard as one unit.

`churn up` / `churn status` / `churn down` (:mod:`pipeline.stack.cli`) drive
:mod:`pipeline.stack.stack`; services are declared in :mod:`pipeline.stack.services`,
processes handled in :mod:`pipeline.stack.procs`, the pid record kept by
:mod:`pipeline.stack.state`. Nothing here imports Prefect, MLflow or Streamlit: they run
as separate processes, reached over HTTP on 127.0.0.1.
"""
