"""Candidate model specs: one YAML file per candidate in ``models/``.

Adding a candidate is adding a file, no code::

    # models/xgboost.yaml
    kind: xgboost              # xgboost | logistic | rule
    description: Gradient-boosted trees, early stopping on validation log loss.
    features: all              # or a list of feature names
    exclude: []                # names removed from `features`
    params: {n_estimators: 800, max_depth: 5, learning_rate: 0.05}
    early_stopping: {rounds: 50, metric: logloss}
    monotone: {failed_payments_30d: 1}   # xgboost only: +1 risk never falls as it grows
    adapt: true                # default: size-dependent params scale with the data (see adapt.py)

The candidate's name is the file's stem unless ``name:`` says otherwise. Every key is
checked here, so a typo fails before any data is read, naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml

from pipeline.errors import SpecError

Kind = Literal["xgboost", "logistic", "rule"]
KINDS: Final[tuple[str, ...]] = ("xgboost", "logistic", "rule")

# Hyperparameters each kind understands (anything else is a typo until proven otherwise).
PARAMS: Final[dict[str, frozenset[str]]] = {
    "xgboost": frozenset({
        "n_estimators", "learning_rate", "max_depth", "min_child_weight", "subsample",
        "colsample_bytree", "colsample_bynode", "reg_lambda", "reg_alpha", "gamma",
        "max_bin", "tree_method", "scale_pos_weight", "max_delta_step", "n_jobs",
    }),
    "logistic": frozenset({"C", "max_iter", "class_weight", "scaler", "tol"}),
    "rule": frozenset(),
}
_KEYS: Final = frozenset({
    "name", "kind", "description", "features", "exclude", "params", "early_stopping", "monotone", "adapt",
})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class EarlyStopping:
    rounds: int = 50
    metric: Literal["logloss", "auc", "aucpr"] = "logloss"


@dataclass(frozen=True)
class CandidateSpec:
    """A validated candidate. ``features=None`` means every feature of the feature set."""

    name: str
    kind: Kind
    description: str = ""
    features: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    early_stopping: EarlyStopping | None = None
    monotone: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""
    adapt: bool = True  # scale size-dependent hyperparameters to the data (pipeline.training.adapt)

    def missing_features(self, available: Sequence[str]) -> list[str]:
        """Features this candidate names (``features``/``exclude``) that the topic's feature spec
        lacks: an imported source without sessions has no ``days_since_last_session``, so a rule on
        it does not apply there. (Monotone constraints on absent features constrain nothing.)"""
        return [f for f in (*(self.features or ()), *self.exclude) if f not in available]

    def resolve_features(self, available: Sequence[str]) -> tuple[str, ...]:
        """The feature columns this candidate uses, in the feature set's order."""
        missing = self.missing_features(available)
        if missing:
            raise SpecError(
                f"{self._where()}: unknown feature(s) {missing}; the feature set has {list(available)[:12]}"
                + (f" and {len(available) - 12} more" if len(available) > 12 else "")
            )
        wanted = available if self.features is None else self.features
        chosen = tuple(f for f in wanted if f not in set(self.exclude))
        if not chosen:
            raise SpecError(f"{self._where()}: no features left after `exclude`")
        return chosen

    def _where(self) -> str:
        return f"candidate {self.name!r}" + (f" ({self.source})" if self.source else "")


def parse_spec(raw: Mapping[str, Any], name: str, source: str = "") -> CandidateSpec:
    """Validate one spec mapping (as read from YAML)."""
    where = source or name
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    name = str(raw.get("name", name))
    if not _NAME.match(name):
        raise SpecError(f"{where}: name {name!r} must be lower_snake_case (a-z, 0-9, _), at most 41 chars")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind must be one of {list(KINDS)}, got {kind!r}")

    features = raw.get("features", "all")
    if features in ("all", None):
        feats = None
    elif isinstance(features, list) and features and all(isinstance(f, str) for f in features):
        feats = tuple(features)
    else:
        raise SpecError(f"{where}: features must be 'all' or a non-empty list of names, got {features!r}")
    if kind == "rule" and (feats is None or len(feats) != 1):
        raise SpecError(f"{where}: a rule uses exactly one feature, e.g. `features: [days_since_last_session]`")
    exclude = raw.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(f, str) for f in exclude):
        raise SpecError(f"{where}: exclude must be a list of feature names, got {exclude!r}")

    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise SpecError(f"{where}: params must be a mapping, got {params!r}")
    bad = sorted(set(params) - PARAMS[kind])
    if bad:
        raise SpecError(f"{where}: unknown {kind} param(s) {bad}; allowed: {sorted(PARAMS[kind]) or 'none'}")

    es_raw = raw.get("early_stopping")
    es = None
    if es_raw is not None:
        if kind != "xgboost":
            raise SpecError(f"{where}: early_stopping applies to kind xgboost only")
        if not isinstance(es_raw, Mapping) or set(es_raw) - {"rounds", "metric"}:
            raise SpecError(f"{where}: early_stopping takes {{rounds: int, metric: logloss|auc|aucpr}}, got {es_raw!r}")
        rounds, metric = es_raw.get("rounds", 50), es_raw.get("metric", "logloss")
        if not isinstance(rounds, int) or rounds < 1 or metric not in ("logloss", "auc", "aucpr"):
            raise SpecError(f"{where}: early_stopping rounds must be an int >= 1 and metric logloss|auc|aucpr, got {es_raw!r}")
        es = EarlyStopping(rounds, metric)

    mono = raw.get("monotone") or {}
    if mono and kind != "xgboost":
        raise SpecError(f"{where}: monotone constraints apply to kind xgboost only")
    if not isinstance(mono, Mapping) or any(v not in (-1, 1) for v in mono.values()):
        raise SpecError(f"{where}: monotone maps feature -> +1 (risk rises) or -1 (risk falls), got {mono!r}")

    adapt = raw.get("adapt", True)
    if not isinstance(adapt, bool):
        raise SpecError(f"{where}: adapt must be true or false, got {adapt!r}")

    return CandidateSpec(
        name=name, adapt=adapt, kind=kind, description=str(raw.get("description", "")).strip(), features=feats,
        exclude=tuple(exclude), params=MappingProxyType(dict(params)), early_stopping=es,
        monotone=MappingProxyType(dict(mono)), source=source,
    )


def load_spec(path: Path) -> CandidateSpec:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    return parse_spec(raw or {}, path.stem, str(path))


def load_specs(directory: Path, only: Iterable[str] | None = None) -> list[CandidateSpec]:
    """All ``*.yaml``/``*.yml`` specs in ``directory`` (sorted by name), or just ``only``."""
    if not directory.is_dir():
        raise SpecError(f"no candidate directory {directory}; create it with one YAML spec per candidate")
    specs = [load_spec(p) for p in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{directory}: candidate name(s) {dupes} defined twice; names must be unique")
    if only is not None:
        only = list(only)
        unknown = [n for n in only if n not in names]
        if unknown:
            raise SpecError(f"unknown candidate(s) {unknown}; {directory} defines {names}")
        specs = [s for s in specs if s.name in only]
    if not specs:
        raise SpecError(f"no candidate specs (*.yaml) in {directory}")
    return specs
