"""`churn dashboard`: serve the Streamlit dashboard on 127.0.0.1 (foreground)."""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Annotated

import typer

from dashboard.launch import command, serve
from pipeline.config import Settings
from pipeline.errors import ChurnError


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
        from churn.cli.common import friendly

        def run() -> None:
            check_port(ctx.obj, address, port)
            argv, env = command(ctx.obj, address, port, refresh)
            typer.echo(f"dashboard on http://{address}:{port} (Ctrl-C stops it)")
            raise typer.Exit(serve(argv, env))

        friendly(run)()


def check_port(settings: Settings, address: str, port: int) -> None:
    """Refuse a busy port before Streamlit starts: otherwise the user sees our "dashboard on
    ..." line, then Streamlit's own "Port 8501 is not available" and a make error. The usual
    culprit is the dashboard of a `churn up` stack, so say when that is the case."""
    if not _in_use(address, port):
        return
    if _stack_dashboard_port(settings) == port:
        raise ChurnError(f"port {port} is in use (a `churn up` stack serves the dashboard there: `churn status`); "
                         "choose another with --port")  # fmt: skip
    raise ChurnError(f"port {port} is in use on {address} (another program, or a `churn up` stack of another "
                     "data dir: `churn status`); choose another with --port")  # fmt: skip


def _in_use(address: str, port: int) -> bool:
    """True only when binding ``address:port`` fails because something listens there (any
    address family); an address that does not resolve or bind otherwise is Streamlit's to
    report, not a busy port."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError):
        return False
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind(where)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _stack_dashboard_port(settings: Settings) -> int | None:
    """The port of the running stack's dashboard for this data dir (None: none recorded or running)."""
    from churn.stack import procs
    from churn.stack.state import StackError, load, state_path

    with contextlib.suppress(StackError):  # an unreadable state file is `churn status`'s to explain
        st = load(state_path(settings.data_dir))
        svc = st.service("dashboard") if st else None
        if svc is not None and procs.alive(svc.pid, svc.started):
            return svc.port
    return None
