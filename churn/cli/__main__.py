"""``python -m churn.cli``: the ``churn`` command without its console script."""

from churn.cli.app import main

main()
