"""Peak resident memory of the current process, shared by the benchmarks' child processes."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` belongs to the address space, which exec
    replaces; ``ru_maxrss`` would also count the forked parent's pages before exec
    (it is only the fallback where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)
