"""`churn demo` (what `make demo` runs): parses the options and runs :func:`churn.stack.demo.run`."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from churn.stack.demo import live_status, run
from churn.stack.state import StackError
from pipeline.config import Settings
from pipeline.humanize import duration


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``churn`` Typer app."""

    @app.command("demo")
    def demo_command(
        ctx: typer.Context,
        quick: Annotated[bool, typer.Option("--quick", envvar="DEMO_QUICK", help="Small population, bounded live stream, stops by itself (env DEMO_QUICK=1).")] = False,
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

            interruptible()
            try:
                res = run(s, ports_of(s, prefect=prefect_port, mlflow=mlflow_port, dashboard=dashboard_port), quick,
                          overwrite, _say(console),
                          lambda st, ch, narrate: foreground(s, st, ch, console, err, status=lambda: live_status(s),
                                                             narrate=narrate),
                          lambda st: print_ready(st, _Console(_say(console)), s))  # fmt: skip
            except subprocess.CalledProcessError as exc:
                raise StackError(f"step failed: {' '.join(map(str, exc.cmd[2:]))} exited {exc.returncode}") from None
            except KeyboardInterrupt:
                err.print("aborted; stopping what was started")
                from churn.stack.stack import down

                down(s, out=_say(console))
                raise typer.Exit(130) from None
            t = res["timings"]
            console.print("demo timings: " + ", ".join(f"{k} {duration(v)}" for k, v in t.items()))

        friendly(go)()
