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
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        d: dict[str, Any] = json.loads(raw)
        if d.pop("version", None) != VERSION:
            raise ValueError(f"unknown version (expected {VERSION})")
        services = [ServiceRecord(**s) for s in d.pop("services")]
        return StackState(**d, services=services)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StackError(
            f"stack state file {path} is unreadable ({type(exc).__name__}: {str(exc)[:120]}); stop any "
            f"leftover services by hand (their logs are in {path.parent / 'logs'}), then run "
            f"`churn down --forget` to remove the file"
        ) from None


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
