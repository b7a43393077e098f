"""`churn up` / `churn status` / `churn down` (and `churn demo`): the local stack from the shell.

``churn/cli/app.py`` calls :func:`register` once to add the commands to the ``churn`` app.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.config import Settings
from pipeline.humanize import duration


def _export_lines(env: dict[str, str]) -> list[str]:
    # quoted: a value with spaces, quotes or `$` must arrive intact and never run when sourced
    return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]


def path_line(prefix: str | None = None) -> str:
    """``export PATH=<venv>/bin:"$PATH"``: the venv of the running python first on PATH, so
    `prefect` and `churn` work in a shell that sourced env.sh without activating the venv."""
    venv_bin = Path(prefix or sys.prefix) / "bin"
    return f'export PATH={shlex.quote(str(venv_bin))}:"$PATH"'


def env_file_lines(env: dict[str, str], prefix: str | None = None) -> list[str]:
    """The lines of env.sh: every value quoted, then the venv's bin on PATH."""
    return [*_export_lines(env), path_line(prefix)]


def _say(console):  # noqa: ANN001, ANN202 - rich Console -> print function that never wraps lines
    return lambda msg: console.print(msg, soft_wrap=True, markup=False)


def columns(headers: list[str], rows: list[list[str]], right: tuple[str, ...] = ()) -> str:
    """Plain aligned columns (pipe-friendly, never wrapped), like `churn lag`."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, headers, strict=False)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def print_table(state, console) -> None:  # noqa: ANN001 - StackState, rich Console
    rows = [[s.name, s.url, str(s.pid), "" if s.start_s is None else f"{s.start_s:.1f}", s.log] for s in state.services]
    console.print(columns(["SERVICE", "URL", "PID", "START-S", "LOG"], rows, ("PID", "START-S")),
                  soft_wrap=True, markup=False)  # fmt: skip


def print_ready(state, console, settings: Settings) -> None:  # noqa: ANN001
    from churn.stack.stack import champion_hint
    from churn.stack.state import state_path

    print_table(state, console)
    env_file = state_path(settings.data_dir).parent / "env.sh"
    env_file.write_text("\n".join(env_file_lines(state.env)) + "\n")
    console.print(f"state: {state_path(settings.data_dir)}")
    console.print(f"in another terminal (or `source {shlex.quote(str(env_file))}`):", soft_wrap=True)
    for line in env_file_lines(state.env):
        console.print(f"  {line}", soft_wrap=True, markup=False)
    say = _say(console)
    say("  prefect deployment run 'train/weekly' --watch     # train, compare, register, gate")
    say("  prefect deployment run 'stream/live'              # score the stream until cancelled")
    if hint := champion_hint(state):
        console.print(f"[yellow]note:[/] {hint}", soft_wrap=True)


def interruptible() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (so what was started gets stopped), even when
    SIGINT was inherited as ignored (a command started with `&` from a script)."""

    def _term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def foreground(settings: Settings, state, children: list[subprocess.Popen[bytes]], console, err,  # noqa: ANN001
               status: Callable[[], str | None] | None = None, status_every_s: float = 30.0,
               narrate: Callable[[], None] | None = None, narrate_every_s: float = 5.0) -> None:
    """Stay until Ctrl-C / SIGTERM; report a service that dies; print ``status()`` every
    ``status_every_s`` (when it has something to say) and call ``narrate()`` (it prints what
    the loop did: drift -> retrain -> gate) every ``narrate_every_s``; then stop everything.

    `churn down` from another terminal ends it too (exit 0): it removes the state file once
    everything is stopped. A service that died while the file is still there is reported,
    unless it looks stopped from outside (see :func:`_stopped_from_outside`): those are held
    until the file goes (`churn down` at work) or ``2 x grace + 5`` s pass."""
    from churn.stack import procs
    from churn.stack.stack import down
    from churn.stack.state import state_path

    def _term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    # Ctrl-C must stop the stack even when SIGINT was inherited as ignored (started with `&`)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    reported: set[str] = set()
    held: dict[str, float] = {}  # service -> monotonic time its death was seen (maybe `churn down`)
    settle_s = 2 * settings.stack_stop_grace_s + 5  # `churn down`: two waves of SIGTERM + grace
    path = state_path(settings.data_dir)
    stopped_by_down = False
    try:
        console.print("running; Ctrl-C stops everything")
        next_status = time.monotonic() + 10.0
        next_narrate = time.monotonic()
        while True:
            if narrate is not None and time.monotonic() >= next_narrate:
                next_narrate = time.monotonic() + narrate_every_s
                try:
                    narrate()
                except Exception as exc:  # noqa: BLE001 - narration must never stop the stack
                    console.print(f"(loop narration unavailable: {type(exc).__name__}: {exc})", soft_wrap=True,
                                  markup=False)
            if status is not None and time.monotonic() >= next_status:
                next_status = time.monotonic() + status_every_s
                try:
                    line = status()
                except Exception as exc:  # noqa: BLE001 - a status line must never stop the stack
                    line = f"(status unavailable: {type(exc).__name__}: {exc})"
                if line:
                    console.print(f"{time.strftime('%H:%M:%S')} {line}", highlight=False, soft_wrap=True)
            if not path.exists():  # `churn down` (or `--forget`) removed it: nothing left to watch
                stopped_by_down = True
                break
            for c in children:
                c.poll()
            codes = {c.pid: c.returncode for c in children}
            for s in state.services:
                if s.name in reported or procs.alive(s.pid, s.started):
                    continue
                first = held.setdefault(s.name, time.monotonic())
                if _stopped_from_outside(codes.get(s.pid)) and time.monotonic() - first < settle_s:
                    continue
                reported.add(s.name)
                err.print(f"[bold red]error:[/] {s.name} (pid {s.pid}) exited; last lines of {escape(str(s.log))}:\n"
                          f"{escape(procs.tail(Path(s.log), 15))}")  # fmt: skip
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("\nstopping the stack ...")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the shutdown short
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # (it is bounded: the grace period, twice)
        try:  # after `churn down` this only stops a child still running (the file was removed by hand)
            down(settings, out=_say(console), children=children)
        finally:
            signal.signal(signal.SIGTERM, old)
            signal.signal(signal.SIGINT, old_int)
    console.print("stack stopped (churn down)" if stopped_by_down else "stopped")


def _stopped_from_outside(returncode: int | None) -> bool:
    """A service that ended by a signal (SIGTERM/SIGKILL/SIGINT, as `churn down` sends) or
    cleanly (servers exit 0 on SIGTERM) is probably being stopped by `churn down`, which
    removes the state file only after its last wave; an error exit is a crash, reported at
    once. ``None``: not our child (exit status unknown), treated like a signal."""
    return returncode is None or returncode <= 0 or returncode in (128 + 2, 128 + 9, 128 + 15)


class _Console:
    """Adapter so print_ready can print through a ``say`` function."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def print(self, msg: object, **_: object) -> None:
        self.say(str(msg))


def register(app: typer.Typer) -> None:
    """Add ``up``, ``status``, ``down`` and ``demo`` to the ``churn`` Typer app."""

    @app.command("up")
    def up_command(
        ctx: typer.Context,
        prefect_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Prefect server port (env CHURN_PREFECT_PORT, default 4200).")] = None,
        mlflow_port: Annotated[int | None, typer.Option(min=1, max=65535, help="MLflow UI port (env CHURN_MLFLOW_PORT, default 5000).")] = None,
        dashboard_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Dashboard port (env CHURN_DASHBOARD_PORT, default 8501).")] = None,
        detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once healthy; stop later with `churn down`.")] = False,
        timeout: Annotated[float | None, typer.Option(min=1, help="Seconds each service may take to get healthy (env CHURN_STACK_START_TIMEOUT_S, default 240).")] = None,
    ) -> None:
        """Start Prefect server, served deployments, MLflow UI and dashboard on 127.0.0.1."""
        from churn.cli.common import console, err, friendly

        def run() -> None:
            from churn.stack.stack import ports_of, up

            s: Settings = ctx.obj
            children: list[subprocess.Popen[bytes]] = []
            interruptible()
            t0 = time.monotonic()
            try:
                state = up(s, ports_of(s, prefect=prefect_port, mlflow=mlflow_port, dashboard=dashboard_port),
                           timeout_s=timeout, out=_say(console), children=children)  # fmt: skip
            except KeyboardInterrupt:
                err.print("aborted; everything started was stopped")
                raise typer.Exit(130) from None
            console.print(f"stack up in {duration(time.monotonic() - t0)}")
            print_ready(state, console, s)
            if detach:
                from churn.stack.stack import churn_command

                console.print(f"detached; `{churn_command(s, 'status')}` checks it, "
                              f"`{churn_command(s, 'down')}` stops it", soft_wrap=True)  # fmt: skip
                return
            foreground(s, state, children, console, err)

        friendly(run)()

    @app.command("status")
    def status_command(ctx: typer.Context) -> None:
        """Which services of the stack run and answer their health check (exit 1 if any does not)."""
        from churn.cli.common import console, friendly

        def run() -> None:
            from churn.stack.stack import status

            rows = status(ctx.obj)
            if rows is None:
                from churn.stack.stack import churn_command

                console.print(f"no stack running for {ctx.obj.data_dir} (start one with "
                              f"`{churn_command(ctx.obj, 'up')}`)")  # fmt: skip
                raise typer.Exit(1)
            table = [[r.name, str(r.pid), "running" if r.running else "exited",
                      ("healthy" if r.healthy else "not-answering") if r.running else "-", r.url, r.log]
                     for r in rows]  # fmt: skip
            console.print(columns(["SERVICE", "PID", "PROCESS", "HEALTH", "URL", "LOG"], table, ("PID",)),
                          soft_wrap=True, markup=False)  # fmt: skip
            if not all(r.running and r.healthy for r in rows):
                raise typer.Exit(1)

        friendly(run)()

    @app.command("down")
    def down_command(
        ctx: typer.Context,
        grace: Annotated[float | None, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL (env CHURN_STACK_STOP_GRACE_S, default 20).")] = None,
        forget: Annotated[bool, typer.Option(help="Only remove an unreadable state file (stop leftover processes yourself).")] = False,
    ) -> None:
        """Stop everything `churn up` started (by pid, process groups included)."""
        from churn.cli.common import console, friendly

        def run() -> None:
            from churn.stack.stack import down
            from churn.stack.state import remove, state_path

            if forget:
                remove(state_path(ctx.obj.data_dir))
                console.print(f"removed {state_path(ctx.obj.data_dir)}")
                return
            stopped = down(ctx.obj, grace, out=_say(console))
            console.print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running for {ctx.obj.data_dir}")

        friendly(run)()
