"""Process plumbing for the local stack: start in a new session, identify, stop without orphans.

Every service runs in its own session (``start_new_session=True``), so its pid is also its
process-group and session id. Stopping sends SIGTERM to the group *and* to every process of
the session or descended from the pid (a child that made its own group is still found),
waits a grace period, then SIGKILLs whatever is left. A pid is only ours if its start time
(``/proc/<pid>/stat`` field 22) still matches the one recorded at launch, so a recycled pid
is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), or None."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot (None: no such process)."""
    f = _stat(pid)
    return int(f[19]) if f else None


def alive(pid: int, started: int | None = None) -> bool:
    """``pid`` exists, is not a zombie, and (when given) started at ``started``."""
    f = _stat(pid)
    if f is None:
        if not PROC.exists():  # not Linux: best effort
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return False
    if f[0] in ("Z", "X"):
        return False
    return started is None or int(f[19]) == started


def _table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgid, sid) of every live process."""
    out: dict[int, tuple[int, int, int]] = {}
    for d in PROC.iterdir() if PROC.exists() else ():
        if d.name.isdigit():
            f = _stat(int(d.name))
            if f and f[0] not in ("Z", "X"):
                out[int(d.name)] = (int(f[1]), int(f[2]), int(f[3]))
    return out


def family(pid: int) -> set[int]:
    """``pid``, its descendants, and every process in its group or session (live ones)."""
    table = _table()
    found = {p for p, (_, pgid, sid) in table.items() if pgid == pid or sid == pid}
    if pid in table:
        found.add(pid)
    grew = True
    while grew:
        kids = {p for p, (ppid, _, _) in table.items() if ppid in found} - found
        found |= kids
        grew = bool(kids)
    return found


def launch(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def stop(targets: Sequence[tuple[int, int | None]], grace_s: float, reap: Iterable[subprocess.Popen[bytes]] = ()) -> list[int]:
    """SIGTERM every ``(pid, start_time)`` target with its whole family, SIGKILL what is left
    after ``grace_s``. Returns the pids that had to be killed. ``reap``: our own children,
    polled so they do not linger as zombies."""
    reap = list(reap)
    members: set[int] = set()
    for pid, started in targets:
        if alive(pid, started):
            members |= family(pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    _signal(members, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        for p in reap:
            p.poll()
        # children forked during shutdown join the family too
        for pid, started in targets:
            if alive(pid, started):
                members |= family(pid)
        if not any(alive(m) for m in members):
            return []
        time.sleep(0.1)
    left = [m for m in members if alive(m)]
    _signal(left, signal.SIGKILL)
    for pid, started in targets:
        if alive(pid, started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    end = time.monotonic() + 5
    while time.monotonic() < end and any(alive(m) for m in left):
        for p in reap:
            p.poll()
        time.sleep(0.05)
    for p in reap:
        p.poll()
    return left


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``host:port`` can be bound now (the way the servers bind: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (for tests and --ports auto)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
