"""The stack's state file: which processes `churn up` started (``<data>/stack/state.json``).

Written atomically (temp file, fsync, rename), so a crash leaves the old or the new file.
An unreadable file is an error that names it and the way out, never a silent reset: the
pids inside are the only record of what is running.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipeline.errors import ChurnError

VERSION = 1


class StackError(ChurnError):
    """The local stack cannot start, is in an unexpected state, or a service failed."""


@dataclass
class ServiceRecord:
    name: str
    pid: int
    started: int | None  # kernel start time of pid (guards against recycled pids)
    url: str
    health: str  # URL answered when healthy ('' = none)
    log: str
    port: int | None = None
    start_s: float | None = None  # seconds from launch to healthy


@dataclass
class StackState:
    data_dir: str
    owner_pid: int  # the `churn up` process (foreground) or the one that detached
    created_at: str
    env: dict[str, str] = field(default_factory=dict)  # what other shells need (PREFECT_API_URL ...)
    services: list[ServiceRecord] = field(default_factory=list)

    def service(self, name: str) -> ServiceRecord | None:
        return next((s for s in self.services if s.name == name), None)


def state_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "stack"


def state_path(data_dir: Path) -> Path:
    return state_dir(data_dir) / "state.json"


def save(path: Path, state: StackState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump({"version": VERSION, **asdict(state)}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: Path) -> StackState | None:
    """The recorded stack, or None when there is no state file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None

    def unreadable(why: str) -> StackError:
        return StackError(
            f"stack state file {path} is unreadable ({why[:120]}); stop any leftover services by hand (their logs "
            f"are in {path.parent / 'logs'}), then run `churn down --forget` to remove the file"
        )

    try:
        d: dict[str, Any] = json.loads(raw.decode())  # not UTF-8: a ValueError like any other damage
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        if d.pop("version", None) != VERSION:
            raise ValueError(f"unknown version (expected {VERSION})")
        # typed: a pid that is not a number would be a traceback in `churn down`, not this line
        return _STATE.validate_python(d | {"services": _SERVICES.validate_python(d["services"])})
    except ValidationError as exc:  # a value of another type (a hand-edited or overwritten file)
        raise unreadable("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise unreadable(f"{type(exc).__name__}: {exc}") from None


_STATE = TypeAdapter(StackState)
_SERVICES = TypeAdapter(list[ServiceRecord])


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
