"""Reading an MLflow tracking store without changing it.

MLflow opens a SQLite URI by creating the file and its tables: a mistyped
``CHURN_MLFLOW_TRACKING_URI`` would silently give the stream an empty registry to wait on
forever, a file that is not a database ends in pages of tracebacks, and an emptied one (0
bytes) would silently become a new registry. Readers (the stream's champion lookup, `churn`
commands that only look) and training call :func:`check_readable` first: it opens nothing
for writing and says in one line what is wrong.

>>> check_readable("sqlite:////nonexistent/mlruns/mlflow.db").startswith("there is no MLflow database")
True
>>> check_readable("http://127.0.0.1:5000") is None  # a tracking server: MLflow's own errors apply
True
>>> check_readable("bogus://x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
pipeline.errors.RegistryError: MLflow tracking store bogus://x is unusable: unsupported URI scheme 'bogus' ...
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pipeline.errors import RegistryError

SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite creates a database file empty and MLflow writes its first tables into it moments
# later: an empty file that stays so this long is not one being created
CREATING_GRACE_S = 2.0
# what MLflow's tracking and registry stores accept ("": a plain path)
TRACKING_SCHEMES = frozenset({"", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql",
                              "databricks", "databricks-uc", "uc"})  # fmt: skip
REGISTRY_TABLE = "registered_models"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_readable(uri: str) -> str | None:
    """None if ``uri`` holds an MLflow registry to read; else why there is none (a missing
    file, no registry tables). Raises :class:`RegistryError` for a file that is not an MLflow
    database, an empty one included (unless it fills within :data:`CREATING_GRACE_S`: being
    created). Never creates or writes anything."""
    hint = "check CHURN_MLFLOW_TRACKING_URI / --tracking-uri (reading never creates a registry)"
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:  # else it reads as "no champion yet" and the stream waits on it
        raise RegistryError(f"MLflow tracking store {uri} is unusable: unsupported URI scheme {scheme!r} (use "
                            f"sqlite:///path, http(s)://host:port, a database URL or a path); {hint}")
    path = sqlite_path(uri)
    if path is None:
        return None
    if _empty(path) and _stays_empty(path):
        # MLflow would build a new, empty registry into it: the champion, the gate's history and
        # the version numbers gone without a word, the next model "the first one"
        raise RegistryError(f"{path} is empty (0 bytes): the MLflow registry there was emptied or damaged; restore "
                            f"it from a backup, or to start a new registry there deliberately move it aside (`mv "
                            f"{path} {path}.empty`) and train (`churn train --tracking-uri sqlite:///{path}`); or "
                            f"{hint}")
    if not path.is_file():
        return f"there is no MLflow database at {path}; train a model with `churn train`, or {hint}"
    with path.open("rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        raise RegistryError(f"{path} is not an MLflow database (not SQLite); {hint}, or move the file away "
                            "and train again with `churn train`")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RegistryError(f"{path} is not a readable MLflow database ({exc}); {hint}, or move the file away "
                            "and train again with `churn train`") from None
    if REGISTRY_TABLE not in tables:
        return f"{path} holds no MLflow registry; train a model with `churn train`, or {hint}"
    return None


def _empty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except FileNotFoundError:
        return False


def _stays_empty(path: Path) -> bool:
    """Whether an empty ``path`` is still empty after :data:`CREATING_GRACE_S` (not being created)."""
    deadline = time.monotonic() + CREATING_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if not _empty(path):
            return False
    return True
