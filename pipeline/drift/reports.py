"""Drift report files under ``<data_dir>/drift/``: HTML reports, JSON summaries, retention.

Every check writes ``drift-<UTC time>-v<model>.json`` (its summary); every N-th also the
full ``.html`` report beside it. Names sort by time, so "latest" is the last name and
retention keeps the newest ``keep`` reports (a summary outlives its HTML: summaries are
small, the HTML is ~6 MB).

>>> from datetime import UTC, datetime
>>> report_name(datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC), "7")
'drift-20260301T120005Z-v7'
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def drift_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "drift"


def report_name(at: datetime, model_version: str) -> str:
    return f"drift-{at.strftime('%Y%m%dT%H%M%SZ')}-v{_SAFE.sub('_', str(model_version))}"


def write_summary(directory: Path, name: str, summary: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    tmp.replace(path)
    return path


def latest(directory: Path, suffix: str = ".html") -> Path | None:
    """The newest report (``.html``) or summary (``.json``), None if there is none."""
    found = sorted(Path(directory).glob(f"drift-*{suffix}"))
    return found[-1] if found else None


def prune(directory: Path, keep_html: int, keep_json: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep_html`` HTML reports (and ``keep_json`` summaries,
    default 10x as many); return the deleted paths."""
    deleted = []
    for suffix, keep in ((".html", keep_html), (".json", keep_json if keep_json is not None else 10 * keep_html)):
        files = sorted(Path(directory).glob(f"drift-*{suffix}"))
        for path in files[: max(0, len(files) - keep)]:
            try:
                path.unlink()
                deleted.append(path)
            except FileNotFoundError:  # pruned concurrently by another worker
                pass
    if deleted:
        log.info("drift retention deleted %d old report file(s) in %s", len(deleted), directory)
    return deleted
