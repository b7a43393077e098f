"""numba's ``njit``, or a no-op stand-in: without numba the compiled functions run as
plain Python (slow, identical results). Every compiled loop of the project takes it
from here, so a module low in the import order can have one too."""

from __future__ import annotations

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; plain Python still works

    def njit(**_kw):  # type: ignore[no-redef]
        return lambda fn: fn


__all__ = ["njit"]
