"""The ``churn`` command: :mod:`churn.cli.app` builds the Typer app and registers each group."""

from churn.cli.app import main

__all__ = ["main"]
