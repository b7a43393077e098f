"""One line for an operating-system error, naming the file and the remedy that fits.

A failed ``write()`` carries no file name (``OSError.filename`` is None), so the file is
found in the failing frames: an open file object, else a ``Path`` the code was writing.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path


def file_of(exc: OSError) -> str | None:
    """The file ``exc`` is about: its ``filename``, else the innermost open file or path in
    the frames it went through."""
    if exc.filename:
        return os.fsdecode(exc.filename)
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str):
                return value.name
        for value in frame.f_locals.values():
            if isinstance(value, Path):
                return str(value)
    return None


def describe(exc: OSError) -> str:
    """The CLI's ``error:`` line for ``exc``."""
    where = file_of(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        at = f" writing {where}" if where else ""
        disk = Path(where).parent if where else Path(".")
        return (f"no space left on device{at}: free space on that disk (`df -h {disk}`) or use a --data-dir "
                "(CHURN_DATA_DIR) on a disk with room, then run the command again")
    if isinstance(exc, PermissionError):
        return f"permission denied: {where or '?'} - choose a writable --data-dir (or CHURN_DATA_DIR)"
    return f"{exc.strerror or exc}: {where or ''} - check --data-dir (or CHURN_DATA_DIR)"
