"""How the drift library says "retrain wanted, because ...": an interface the caller supplies.

The library decides *whether* a retrain is wanted (the retrain policy of
:mod:`pipeline.drift.episodes`, outside the cooldown of :mod:`pipeline.drift.loop`); *how* it
is requested belongs to whoever runs the library.
``flows/`` supplies :class:`flows.retrain.PrefectRunRequester` (a ``train/weekly`` run with the
post-onset window; the run id comes back, so the cooldown starts only once a run exists) and
:class:`flows.retrain.PrefectEventRequester` (a Prefect event that the train
deployment's trigger turns into a run); tests and other orchestrators supply their own.

Stream workers are separate processes, so the requester travels as an import path
(``"package.module:Factory"``, :func:`load_requester`) in
:attr:`pipeline.drift.config.DriftConfig.retrain_requester`; the library never imports it by
name. With none configured, :class:`LogOnly` records that nobody was told.

>>> sent = []
>>> ask = as_requester(sent.append)
>>> ask.request(RetrainRequest("3", ("share of drifted features 0.52 >= 0.40",), {}))
>>> sent[0].because
('share of drifted features 0.52 >= 0.40',)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainRequest:
    """A retrain wanted for ``model_version``, ``because`` of these alert reasons."""

    model_version: str
    because: tuple[str, ...]
    payload: Mapping[str, Any] = field(default_factory=dict)  # level, window, run id, report, ...


@runtime_checkable
class RetrainRequester(Protocol):
    """Delivers a :class:`RetrainRequest`; raises if it could not (the caller records why).

    Returns a reference to the run it created (e.g. a Prefect flow run id) when it knows
    one was created -- only then does the retrain cooldown start -- or None when it only
    handed the request on (an event a trigger may or may not turn into a run)."""

    def request(self, req: RetrainRequest) -> str | None: ...


class LogOnly:
    """No orchestrator configured: log the request, deliver nothing (``delivered`` says so)."""

    delivered = False

    def request(self, req: RetrainRequest) -> None:
        log.warning("retrain wanted for model %s because %s; no retrain requester is configured "
                    "(run the stream through flows/ or set retrain_requester)", req.model_version,
                    "; ".join(req.because) or "(no reason)")  # fmt: skip


class _FunctionRequester:
    def __init__(self, fn: Callable[[RetrainRequest], Any]) -> None:
        self.fn = fn

    def request(self, req: RetrainRequest) -> str | None:
        out = self.fn(req)
        return out if isinstance(out, str) and out else None


def as_requester(obj: RetrainRequester | Callable[[RetrainRequest], Any] | None) -> RetrainRequester:
    """A requester from a requester, a plain function of the request, or None (:class:`LogOnly`)."""
    if obj is None:
        return LogOnly()
    if isinstance(obj, RetrainRequester):
        return obj
    if callable(obj):
        return _FunctionRequester(obj)
    raise TypeError(f"a retrain requester needs .request(req) or to be callable, got {type(obj).__name__}")


def load_requester(path: str) -> RetrainRequester:
    """``"module:Factory"`` -> ``Factory()``; ``""`` -> :class:`LogOnly`."""
    if not path:
        return LogOnly()
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(f"retrain_requester {path!r} must look like 'package.module:Factory'")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"retrain_requester {path!r} cannot be loaded ({exc}); check the import path") from None
    return as_requester(factory())
