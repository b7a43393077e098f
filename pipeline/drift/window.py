"""A bounded window of recent scored feature vectors: a numpy ring buffer.

``observe`` copies one micro-batch into preallocated arrays (no per-row Python work,
no allocation once warm), so the stream can call it on its hot path. ``snapshot``
returns the rows in arrival order as plain arrays for a check running elsewhere.

>>> import numpy as np
>>> from datetime import UTC, datetime
>>> w = DriftWindow(("a", "b"), capacity=3)
>>> w.observe(np.arange(8.0).reshape(4, 2), np.full(4, 0.1), datetime(2026, 1, 1, tzinfo=UTC))
>>> snap = w.snapshot()
>>> snap.values[:, 0].tolist(), len(w), w.seen
([2.0, 4.0, 6.0], 3, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class WindowSnapshot:
    """The window's rows in arrival order (copies: safe to ship to another process)."""

    columns: tuple[str, ...]
    values: np.ndarray  # (n, len(columns)) float64
    risk: np.ndarray  # (n,) float64
    at_us: np.ndarray  # (n,) int64 epoch microseconds, the event time the row is as of
    users: np.ndarray | None  # (n,) object, when observed with user ids

    def __len__(self) -> int:
        return len(self.risk)

    @property
    def start(self) -> datetime | None:
        return _dt(int(self.at_us.min())) if len(self) else None

    @property
    def end(self) -> datetime | None:
        return _dt(int(self.at_us.max())) if len(self) else None

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.values, columns=list(self.columns))


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


def _us(at: datetime) -> int:
    if at.tzinfo is None:
        raise ConfigError(f"observe(at={at!r}): use a timezone-aware UTC datetime")
    return int(at.timestamp() * 1_000_000)


class DriftWindow:
    """``capacity`` newest rows of ``columns`` plus their risk, event time and user."""

    def __init__(self, columns: Sequence[str], capacity: int, keep_users: bool = True) -> None:
        if capacity < 1:
            raise ConfigError(f"drift window capacity={capacity!r}: use an int >= 1")
        self.columns = tuple(columns)
        self.capacity = int(capacity)
        self._values = np.empty((capacity, len(self.columns)), np.float64)
        self._risk = np.empty(capacity, np.float64)
        self._at = np.empty(capacity, np.int64)
        self._users = np.empty(capacity, object) if keep_users else None
        self._next = 0  # slot of the next row
        self._size = 0
        self.seen = 0  # rows observed in total

    def __len__(self) -> int:
        return self._size

    def clear(self) -> None:
        self._next = self._size = 0

    def observe(self, values: np.ndarray, risk: np.ndarray, at: datetime | np.ndarray,
                users: Sequence[str] | None = None) -> None:
        """Append rows (``values`` columns in ``self.columns`` order; ``at`` one time for
        the batch or an int64 epoch-microsecond array per row)."""
        n = len(values)
        if n == 0:
            return
        if values.ndim != 2 or values.shape[1] != len(self.columns) or len(risk) != n:
            raise ConfigError(
                f"drift window expects values of shape (n, {len(self.columns)}) and n risks; got "
                f"{values.shape} and {len(risk)}: pass the columns the monitor was built with"
            )
        at_us = np.full(n, _us(at), np.int64) if isinstance(at, datetime) else np.asarray(at, np.int64)
        self.seen += n
        if n >= self.capacity:  # only the newest rows fit
            values, risk, at_us = values[-self.capacity:], risk[-self.capacity:], at_us[-self.capacity:]
            if users is not None:
                users = users[-self.capacity:]
            n = self.capacity
        first = min(n, self.capacity - self._next)  # up to the end of the ring, then wrap
        for src, dst in ((slice(0, first), slice(self._next, self._next + first)),
                         (slice(first, n), slice(0, n - first))):
            if src.start == src.stop:
                continue
            self._values[dst] = values[src]
            self._risk[dst] = risk[src]
            self._at[dst] = at_us[src]
            if self._users is not None:
                self._users[dst] = None if users is None else users[src]
        self._next = (self._next + n) % self.capacity
        self._size = min(self.capacity, self._size + n)

    def snapshot(self) -> WindowSnapshot:
        order = np.arange(self._next - self._size, self._next) % self.capacity
        users = None if self._users is None else self._users[order]
        if users is not None and pd.isna(users).any():  # some batches came without ids
            users = None
        return WindowSnapshot(self.columns, self._values[order], self._risk[order], self._at[order], users)
