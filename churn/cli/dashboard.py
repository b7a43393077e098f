"""`churn dashboard`: serve the Streamlit dashboard on 127.0.0.1 (foreground)."""

from __future__ import annotations

from typing import Annotated

import typer

from dashboard.launch import command, serve


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the ``churn`` Typer app."""

    @app.command("dashboard")
    def dashboard_command(
        ctx: typer.Context,
        address: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to your network.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8501,
        refresh: Annotated[float, typer.Option(min=1, help="Seconds between live refreshes.")] = 5.0,
    ) -> None:
        """Serve the Streamlit dashboard (Ctrl-C stops it)."""
        argv, env = command(ctx.obj, address, port, refresh)
        typer.echo(f"dashboard on http://{address}:{port} (Ctrl-C stops it)")
        raise typer.Exit(serve(argv, env))
