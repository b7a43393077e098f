"""CPU seconds of this process and every process it started (live or finished).

``os.times()`` counts this process's threads (batch loop, store writer, checkpointer)
and children it has reaped; live descendants (e.g. the drift check process, started
before the clock and still running) are read from ``/proc``: their own time and that of
children they reaped. Take the difference of two readings to time a piece of work,
including a child's CPU that happened in between, whether or not it exited since.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime + cutime + cstime seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def tree_cpu_s(root: int | None = None) -> float:
    """CPU seconds of ``root`` (default: this process) and all its descendants."""
    me = os.getpid() if root is None else root
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                stats[int(entry.name)] = st
    total = 0.0
    if me == os.getpid():
        t = os.times()
        total += t.user + t.system + t.children_user + t.children_system
    elif me in stats:
        total += stats[me][1]
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cpu) in stats.items():
            if ppid == parent:
                total += cpu
                frontier.append(pid)
    return total
