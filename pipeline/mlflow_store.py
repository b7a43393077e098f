"""Reading an MLflow tracking store without changing it.

MLflow opens a SQLite URI by creating the file and its tables: a mistyped
``CHURN_MLFLOW_TRACKING_URI`` would silently give the stream an empty registry to wait on
forever, and a file that is not a database ends in pages of tracebacks. Readers (the
stream's champion lookup, `churn` commands that only look) call :func:`check_readable`
first: it opens nothing for writing and says in one line what is wrong.

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
from pathlib import Path

from pipeline.errors import RegistryError

SQLITE_HEADER = b"SQLite format 3\x00"
# what MLflow's tracking and registry stores accept ("": a plain path)
TRACKING_SCHEMES = frozenset({"", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql",
                              "databricks", "databricks-uc", "uc"})  # fmt: skip
REGISTRY_TABLE = "registered_models"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def check_readable(uri: str) -> str | None:
    """None if ``uri`` holds an MLflow registry to read; else why there is none (a missing or
    empty file, no registry tables). Raises :class:`RegistryError` for a file that is not an
    MLflow database. Never creates or writes anything."""
    hint = "check CHURN_MLFLOW_TRACKING_URI / --tracking-uri (reading never creates a registry)"
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:  # else it reads as "no champion yet" and the stream waits on it
        raise RegistryError(f"MLflow tracking store {uri} is unusable: unsupported URI scheme {scheme!r} (use "
                            f"sqlite:///path, http(s)://host:port, a database URL or a path); {hint}")
    path = sqlite_path(uri)
    if path is None:
        return None
    if not path.is_file() or path.stat().st_size == 0:
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
