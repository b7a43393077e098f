"""Serve the project's flows as Prefect deployments from one long-running process.

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.serve
    PREFECT_API_URL=http://127.0.0.1:4200/api prefect deployment run 'train/weekly'

Why ``prefect.serve`` and not a work pool + worker: serving needs no pool, no pull step
and no ``prefect.yaml``; each run executes in a subprocess of the serve process (a crash
does not take it down); SIGTERM shuts it down cleanly; and it is the same code on a
laptop and on a host next to a real Prefect server. (A process worker also works but needs
a pull step, and ignored SIGTERM when started in the background from a non-interactive
shell; see shared/STACK-NOTES.md.) Without ``PREFECT_API_URL`` serve starts its own
temporary server that no other shell can reach, so point it at a running server.

The ``train/weekly`` deployment has a weekly schedule (Mondays 03:00 UTC) that is
*paused* unless ``--schedule-active`` is given; at most one training runs at a time (the
gate moves a shared alias). ``flows.stream`` deployments are served too when that module
provides ``deployments()``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

TRAIN_DEPLOYMENT = "weekly"
TRAIN_CRON = "0 3 * * 1"


def train_deployment(schedule_active: bool = False, parameters: dict[str, Any] | None = None) -> Any:
    from prefect.schedules import Cron

    from flows.retrain import train_trigger
    from flows.train import train

    return train.to_deployment(
        name=TRAIN_DEPLOYMENT,
        schedules=[Cron(TRAIN_CRON, timezone="UTC", active=schedule_active)],
        triggers=[train_trigger()],  # critical drift (churn.drift.detected) retrains, with a cooldown
        concurrency_limit=1,
        parameters=parameters or {},
        tags=["churn", "train"],
        description="Retrain, compare and gate the churn model (weekly; schedule paused by default).",
    )


def deployments(schedule_active: bool = False, data_dir: str | None = None,
                train_params: dict[str, Any] | None = None) -> list[Any]:
    params = dict(train_params or {}) | ({"data_dir": data_dir} if data_dir else {})
    out = [train_deployment(schedule_active, params)]
    from flows.realised import deployment as realised_deployment

    out.append(realised_deployment(data_dir))  # realised performance as labels mature (daily)
    try:  # the stream flow's module adds its own deployments when it exists
        stream = importlib.import_module("flows.stream")
    except ModuleNotFoundError:
        return out
    if hasattr(stream, "deployments"):
        out += list(stream.deployments(data_dir=data_dir))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.serve", description="Serve the churn flows as deployments.")
    ap.add_argument("--schedule-active", action="store_true", help="activate the weekly train schedule")
    ap.add_argument("--data-dir", help="data directory the runs use (default: CHURN_DATA_DIR or ./data)")
    ap.add_argument("--train-params", metavar="JSON", default=None,
                    help='default parameters of train/weekly, also for drift-triggered runs, e.g. '
                         '\'{"horizon_days": 14, "candidates": ["xgboost"]}\'')
    args = ap.parse_args(argv)
    try:
        train_params = json.loads(args.train_params) if args.train_params else {}
        if not isinstance(train_params, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        ap.error(f"--train-params {args.train_params!r}: {exc}; pass a JSON object of train flow parameters")

    from flows.env import local_defaults
    from pipeline.config import load_settings

    local_defaults()
    data_dir = str(load_settings(data_dir=args.data_dir).data_dir.resolve())
    from prefect import serve

    serve(*deployments(args.schedule_active, data_dir, train_params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
