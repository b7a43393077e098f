"""Tiny stdlib HTTP helpers for health checks and the Prefect/MLflow REST APIs (127.0.0.1)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def request(url: str, body: Any = None, timeout: float = 3.0, method: str | None = None) -> tuple[int, Any]:
    """(status, parsed JSON or text); status 0 when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"} if data is not None else {})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - local URLs we built
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (OSError, ValueError):
        return 0, None
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def ok(url: str, timeout: float = 3.0) -> bool:
    status, _ = request(url, timeout=timeout)
    return 200 <= status < 300
