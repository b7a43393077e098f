"""`churn` - the command line. Builds the settings once and passes them down.

Each command group lives in its own thin module (``churn.cli.log``, ``.train``, ``.stream``,
...) exposing ``register(app)``; :func:`build_app` adds them all. User mistakes (bad flag
values, unwritable data dir, missing state) print one clear line and exit 1; usage errors
exit 2 (Typer's convention). No tracebacks for those.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from churn.cli import dashboard, demo, drift, features, ingest, log, stack, stream, train
from churn.cli.common import err
from flows.env import env_defaults
from pipeline.config import load_settings
from pipeline.errors import ChurnError

GROUPS = (log, train, stream, drift, dashboard, ingest, stack, demo, features)


def build_app() -> typer.Typer:
    """The ``churn`` Typer app with every command group registered."""
    app = typer.Typer(
        name="churn",
        help="Streaming churn intelligence: simulate, import, train, stream, monitor drift, run the local stack.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # help texts are plain: "[default: ./data]" must print, not vanish as a tag
    )
    app.callback()(_main)
    for group in GROUPS:
        group.register(app)
    return app


def _main(
    ctx: typer.Context,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory [env CHURN_DATA_DIR; default ./data].")] = None,
    topic: Annotated[str | None, typer.Option(help="Event topic [env CHURN_TOPIC; default events].")] = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions for a new topic [env CHURN_PARTITIONS; default 4].")] = None,
) -> None:
    try:
        ctx.obj = load_settings(data_dir=data_dir, topic=topic, partitions=partitions,
                                cli_options=("data_dir", "topic", "partitions"))
    except ChurnError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None



app = build_app()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: usage errors as one line (exit 2), Ctrl-C as exit 130."""
    env_defaults()  # before any command imports MLflow or Prefect
    try:  # typer >= 0.25 vendors click as typer._click; older versions use click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover
        from click import exceptions as cx

    try:
        rc = app(args=argv, prog_name="churn", standalone_mode=False)
    except cx.NoArgsIsHelpError:  # typer has already printed the help
        sys.exit(0)
    except cx.UsageError as exc:
        name = exc.ctx.command_path if exc.ctx else "churn"
        err.print(f"[bold red]error:[/] {escape(exc.format_message())} (see `{name} --help`)", soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except cx.ClickException as exc:
        err.print(f"[bold red]error:[/] {escape(exc.format_message())}", soft_wrap=True)
        sys.exit(exc.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
