"""`churn demo` (what `make demo` runs): parses the options and runs :func:`churn.stack.demo.run`."""

from __future__ import annotations

import os
import subprocess
from typing import Annotated

import typer

from churn.stack.demo import live_status, quick_from_env, run
from churn.stack.state import StackError
from pipeline.config import Settings
from pipeline.humanize import duration


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``churn`` Typer app."""

    @app.command("demo")
    def demo_command(
        ctx: typer.Context,
        quick: Annotated[bool, typer.Option("--quick", help="Small population, bounded live stream, stops by itself (env DEMO_QUICK=1/true/yes; 0/false/no: the full demo).")] = False,
        overwrite: Annotated[bool, typer.Option(help="Replace a data directory the demo did not make.")] = False,
        prefect_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Prefect server port (env CHURN_PREFECT_PORT, default 4200).")] = None,
        mlflow_port: Annotated[int | None, typer.Option(min=1, max=65535, help="MLflow UI port (env CHURN_MLFLOW_PORT, default 5000).")] = None,
        dashboard_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Dashboard port (env CHURN_DASHBOARD_PORT, default 8501).")] = None,
    ) -> None:
        """Simulate, start the stack, train and stream through the deployments, live producer with drift."""
        from churn.cli.common import console, err, friendly
        from churn.cli.stack import _Console, _say, foreground, print_ready
        from churn.stack.stack import ports_of

        s: Settings = ctx.obj

        def go() -> None:
            from churn.cli.stack import interruptible

            # DEMO_QUICK is read here, strictly, for `make demo` too (the Makefile used to pass
            # --quick for anything but 0, so DEMO_QUICK=false ran the quick demo)
            is_quick = quick or quick_from_env(os.environ.get("DEMO_QUICK"))
            interruptible()
            try:
                res = run(s, ports_of(s, prefect=prefect_port, mlflow=mlflow_port, dashboard=dashboard_port), is_quick,
                          overwrite, _say(console),
                          lambda st, ch, narrate: foreground(s, st, ch, console, err, status=lambda: live_status(s),
                                                             narrate=narrate),
                          lambda st: print_ready(st, _Console(_say(console)), s))  # fmt: skip
            except subprocess.CalledProcessError as exc:
                raise StackError(f"step failed: {' '.join(map(str, exc.cmd[2:]))} exited {exc.returncode}") from None
            except KeyboardInterrupt:  # run() has stopped what it started
                err.print("aborted; everything started was stopped")
                raise typer.Exit(130) from None
            t = res["timings"]
            console.print("demo timings: " + ", ".join(f"{k} {duration(v)}" for k, v in t.items()))

        friendly(go)()

    @app.command("loop-demo")
    def loop_demo_command(ctx: typer.Context) -> None:
        """The ground-truth loop in compressed time, in one process (~3-6 min): drift, episode, deferred retrain, gate, recovery.

        Simulates 3,000 users x 100 days with a content outage on day 60 and a 7-day label
        horizon into the (empty) data directory, trains v1 on the days before it, streams the
        history through a worker with drift checks and the retrain policy; the retrain (the
        train flow's fit and post-onset gate, run in-process) happens once post-onset labels
        matured. Then `churn dashboard` on the same data directory shows it (Drift page:
        the decisions; Model page: realised performance by scoring day). The same loop on a
        real Prefect server is tests/drift/test_loop_prefect.py.
        """
        from churn.cli.common import console, friendly

        s: Settings = ctx.obj
        friendly(lambda: _loop_demo(s, console))()


def _loop_demo(s: Settings, console) -> None:  # noqa: ANN001 - a rich Console
    import logging
    import os
    import time

    from pipeline.errors import ConfigError
    from pipeline.simulator.scenarios import COMPRESSED as T
    from pipeline.testing.loop import closed_loop, describe

    data = s.data_dir.resolve()
    if data.exists() and any(data.iterdir()):
        raise ConfigError(f"{data} is not empty: the loop demo simulates its own history; give it a new directory "
                          "(churn --data-dir /tmp/churn-loop loop-demo)")  # fmt: skip
    data.mkdir(parents=True, exist_ok=True)
    uri = s.mlflow_tracking_uri or f"sqlite:///{data / 'mlruns' / 'mlflow.db'}"
    if not s.mlflow_tracking_uri:
        (data / "mlruns").mkdir(exist_ok=True)
    logging.getLogger("pipeline").setLevel(logging.ERROR)  # every Critical check logs a warning: the timeline says it
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Created version '2' ...": the timeline says it
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    t = time.perf_counter()
    run = closed_loop(data, T.drift, T.drift_day, users=T.users, days=T.days, seed=3, horizon_days=T.horizon_days,
                      retrain_after_days=T.retrain_after_days, min_churners=T.min_churners, tracking_uri=uri,
                      say=lambda line: console.print(line, markup=False, highlight=False))  # fmt: skip
    console.print("\n" + describe(run), markup=False, highlight=False)
    console.print(f"\ndone in {duration(time.perf_counter() - t)}. Look at it:", markup=False)
    console.print(f"  CHURN_MLFLOW_TRACKING_URI={uri} churn --data-dir {data} dashboard\n"
                  "  Drift page: the episode's decisions; Model page: realised ROC-AUC by scoring day, v1 then v2",
                  markup=False, highlight=False)  # fmt: skip
