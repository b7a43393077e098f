"""What every ``churn`` command shares: the consoles, the settings, one-line errors, the log."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from pipeline.config import Settings
from pipeline.errors import ChurnError


def _console(stderr: bool = False) -> Console:
    """A terminal gets its own width; a pipe or file gets lines that never wrap or cut cells."""
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or os.environ.get("COLUMNS") else 1_000
    return Console(stderr=stderr, highlight=False, width=wide)


console = _console()
err = _console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.obj


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChurnError as exc:
            # a message is text, not markup: "[old]" in a path must print as it is
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # disk full, permissions, ...: the file and the remedy (pipeline.oserrors)
            from pipeline.oserrors import describe

            err.print(f"[bold red]error:[/] {escape(describe(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def open_log(s: Settings, create: bool = True):
    """The configured topic (file or Kafka); ``create=False``: a missing topic is an error."""
    from pipeline.log import open_configured_log

    return open_configured_log(s, create=create)


