"""Candidates that adapt to the data: size-dependent hyperparameters and known directions.

A spec in ``models/`` is written for the default simulation (~150k training rows, ~9k
churners). On a few thousand accounts with 40 churners the same ``min_child_weight: 50``
allows a handful of leaves and ``max_bin: 128`` bins mostly empty ranges; on the other hand
a weakly regularised model overfits few churners. :func:`adapt` rescales, per fit (each CV
fold and the refit see their own sizes):

* xgboost ``min_child_weight`` = total hessian / 200 (at the base rate, about one two-hundredth
  of the churners per leaf), between 1 and the spec's value;
* xgboost ``max_bin`` = the power of two nearest sqrt(rows), between 16 and the spec's value;
* xgboost ``reg_lambda`` x sqrt(1000 / churners) below 1,000 churners (stronger with fewer);
* logistic ``C`` x churners / 200 below 200 churners (stronger L2 with fewer).

Monotone constraints apply only where a feature's meaning is known: the spec's
constraints on built-in features (:data:`pipeline.features.registry.FEATURE_NAMES`), and
``directions`` the caller passes (a topic's feature spec: the import mapping declares
them; ``0`` removes a constraint). A source-defined feature without a declared direction
is never constrained. ``adapt: false`` in a spec keeps its hyperparameters as written.

>>> from pipeline.training.specs import parse_spec
>>> spec = parse_spec({"kind": "xgboost", "params": {"min_child_weight": 50, "max_bin": 128}}, "x")
>>> small, why = adapt(spec, rows=4_000, positives=40, features=("tenure_days",))
>>> small.params["min_child_weight"], small.params["max_bin"]
(1.0, 64)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from pipeline.features.registry import FEATURE_NAMES
from pipeline.training.specs import CandidateSpec

_BUILT_IN = frozenset(FEATURE_NAMES)


def monotone_for(spec: CandidateSpec, features: Sequence[str],
                 directions: Mapping[str, int] | None = None) -> dict[str, int]:
    """The constraints to use: the spec's on built-in features, overridden by ``directions``."""
    feats = set(features)
    out = {f: int(d) for f, d in spec.monotone.items() if f in _BUILT_IN and f in feats}
    for f, d in (directions or {}).items():
        if f not in feats:
            continue
        if int(d) not in (-1, 0, 1):
            raise ValueError(f"direction of {f!r} must be -1, 0 or +1, got {d!r}")
        if int(d) == 0:
            out.pop(f, None)
        else:
            out[f] = int(d)
    return out


def adapt(spec: CandidateSpec, rows: int, positives: int, features: Sequence[str],
          directions: Mapping[str, int] | None = None) -> tuple[CandidateSpec, dict[str, Any]]:
    """``spec`` with hyperparameters for ``rows``/``positives``; plus what changed, for the log."""
    mono = monotone_for(spec, features, directions) if spec.kind == "xgboost" else {}
    changed: dict[str, Any] = {}
    if dict(spec.monotone) != mono:
        changed["monotone"] = mono
    params = dict(spec.params)
    if spec.adapt and rows > 0:
        pos = max(int(positives), 1)
        base = min(pos / rows, 0.5)
        if spec.kind == "xgboost":
            hessian = rows * base * (1 - base)
            mcw_cap = float(params.get("min_child_weight", 50))
            params["min_child_weight"] = round(min(max(hessian / 200, 1.0), mcw_cap), 2)
            bin_cap = int(params.get("max_bin", 256))
            params["max_bin"] = int(min(max(2 ** round(math.log2(math.sqrt(rows))), 16), bin_cap))
            if pos < 1_000:
                params["reg_lambda"] = round(float(params.get("reg_lambda", 1.0)) * math.sqrt(1_000 / pos), 3)
        elif spec.kind == "logistic" and pos < 200:
            params["C"] = float(params.get("C", 1.0)) * pos / 200
        changed |= {k: v for k, v in params.items() if spec.params.get(k) != v}
    return replace(spec, params=MappingProxyType(params), monotone=MappingProxyType(mono)), changed
