"""Stop Prefect's temporary API server when the process that started it dies.

With no ``PREFECT_API_URL``, Prefect runs flows against a temporary ("ephemeral") API server:
a ``uvicorn`` child process it stops at exit. A process killed with SIGKILL (or the OOM
killer) runs no exit handler, so the server stayed behind for good, holding a port and
~150 MB, one more per killed ``churn stream``/``churn train``. :func:`tie_to_owner` starts
this module as a small watchdog beside each such server: it waits on both processes (pidfds,
immune to pid reuse) and, when the owner dies first, terminates the server (SIGKILL after
:data:`GRACE_S`); when the server ends first (the normal exit) it just exits.

The server is also started in its own session (:class:`_OwnSession`). Prefect starts it in
the owner's process group, so a terminal's Ctrl-C (SIGINT to the whole foreground group)
killed it at once while the owner was still draining: the owner's last API calls (the run's
final state, its logs and events) then failed with tracebacks and retried against a dead
port for minutes, and ``churn stream`` never printed its closing report. Out of the group,
the server lives until the owner stops it at exit (Prefect's ``atexit``), or, if the owner
is killed, until the watchdog stops it.

    python -m flows.reaper OWNER_PID SERVER_PID
    python -m flows.reaper --fds OWNER_PIDFD SERVER_PIDFD   (inherited; how it is started)
"""

from __future__ import annotations

import functools
import logging
import os
import select
import signal
import subprocess
import sys
import types
from typing import Any

GRACE_S = 5.0
log = logging.getLogger("flows.reaper")
_TIED: set[int] = set()  # server pids this process already watches
_WATCHDOGS: list[subprocess.Popen[bytes]] = []  # kept: a dropped Popen of a live child warns


def watch(owner_pid: int, server_pid: int) -> int:
    """Block until the owner or the server ends; stop the server if the owner went first.
    0 when the server was stopped or ended on its own, 1 if either was already gone."""
    try:
        owner = os.pidfd_open(owner_pid)
        server = os.pidfd_open(server_pid)
    except ProcessLookupError:  # gone before we looked: nothing to tie
        return 1
    return watch_fds(owner, server)


def watch_fds(owner: int, server: int) -> int:
    """:func:`watch` on pidfds already open (closed here)."""
    try:
        both = select.poll()  # not select(): inherited fd numbers may be >= 1024
        both.register(owner, select.POLLIN)
        both.register(server, select.POLLIN)
        if server in {fd for fd, _ in both.poll()}:
            return 0  # the server ended (its owner stopped it at exit)
        signal.pidfd_send_signal(server, signal.SIGTERM)
        alone = select.poll()
        alone.register(server, select.POLLIN)
        if not alone.poll(GRACE_S * 1000):
            signal.pidfd_send_signal(server, signal.SIGKILL)
        return 0
    except ProcessLookupError:
        return 0
    finally:
        os.close(owner)
        os.close(server)


def spawn(owner_pid: int, server_pid: int) -> subprocess.Popen[bytes]:
    """Start the watchdog in its own session (a Ctrl-C to the terminal reaches the owner,
    which stops the server itself; the watchdog then sees it end and exits). The pidfds are
    opened here and handed over, so an owner killed while the watchdog is still starting is
    not missed."""
    owner = os.pidfd_open(owner_pid)
    try:
        server = os.pidfd_open(server_pid)
    except BaseException:
        os.close(owner)
        raise
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.reaper", "--fds", str(owner), str(server)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, pass_fds=(owner, server),
        )  # fmt: skip
    finally:
        os.close(owner)
        os.close(server)


class _OwnSession(types.ModuleType):
    """What Prefect's server module sees as ``subprocess``: the real module, except that
    ``Popen`` (there: only the temporary server's ``uvicorn``) starts its process in a new
    session, out of the terminal's foreground process group: a Ctrl-C meant for the
    command no longer kills the server the command still needs while it drains."""

    class Popen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("start_new_session", True)
            super().__init__(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)


def _own_session(module: Any) -> bool:
    """Make the processes ``module`` starts with ``subprocess.Popen`` start in their own
    session (see :class:`_OwnSession`). Idempotent; False if the module does not use
    ``subprocess`` that way (another Prefect version: the server then stays in the group)."""
    if isinstance(getattr(module, "subprocess", None), _OwnSession):
        return True
    if getattr(module, "subprocess", None) is not subprocess:
        return False
    module.subprocess = _OwnSession("subprocess", "subprocess, with Popen in a new session")
    return True


def tie_to_owner() -> bool:
    """When this process would run flows on a temporary server (no API URL configured),
    make every such server Prefect starts here die with this process, and start it in its
    own session so that a Ctrl-C to this process's terminal does not kill it mid-run (this
    process stops it at exit). Idempotent; False (nothing done) when a server is configured
    or Prefect's server class is not there."""
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return False  # a real server: nothing is started here
    try:
        from prefect.server.api import server as server_module
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:  # pragma: no cover - a Prefect without the temporary server
        return False
    if not _own_session(server_module):  # pragma: no cover - another Prefect
        log.debug("the temporary Prefect server is started in this process group (Ctrl-C reaches it)")
    start = SubprocessASGIServer.start
    if getattr(start, "_churn_tied", False):
        return True

    @functools.wraps(start)
    def start_tied(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = start(self, *args, **kwargs)
        proc = getattr(self, "server_process", None)
        if proc is not None and proc.pid not in _TIED and proc.poll() is None:
            _TIED.add(proc.pid)
            try:
                _WATCHDOGS.append(spawn(os.getpid(), proc.pid))
            except (OSError, AttributeError) as exc:  # no pidfds (old kernel, seccomp, not Linux)
                log.warning("the temporary Prefect server (pid %d) is not tied to this process (%s): "
                            "if this process is killed, stop it by hand", proc.pid, exc)
        return out

    start_tied._churn_tied = True  # type: ignore[attr-defined]
    SubprocessASGIServer.start = start_tied  # type: ignore[method-assign]
    return True


if __name__ == "__main__":
    if sys.argv[1] == "--fds":
        sys.exit(watch_fds(int(sys.argv[2]), int(sys.argv[3])))
    sys.exit(watch(int(sys.argv[1]), int(sys.argv[2])))
