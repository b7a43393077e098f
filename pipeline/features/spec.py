"""The feature spec of a topic: which features its source can say, versioned by content.

A topic's features follow from what its source declares:

* the **built-in** features (:mod:`pipeline.features.registry`) whose event types the
  source has (an imported source without, say, ``payment`` events does not get the
  payment features; the import profile decides which, see :mod:`pipeline.ingest.profile`);
* for every **declared action** of the source's vocabulary (``activity`` events, declared
  in the import mapping's ``actions``), :data:`ACTION_FEATURES` windowed features, plus the
  two topic-level ``activity_days_7d`` / ``activity_days_30d``.

The built-in simulator's topic (no mapping, no actions) has exactly the registry's 29
features and ``version == FEATURE_SET_VERSION``: nothing changes for it.

>>> s = FeatureSpec.from_vocabulary(["export_report", Action("seat_removed", 1)])
>>> s.names[-7:]
('act_seat_removed_1d', 'act_seat_removed_7d', 'act_seat_removed_14d', 'act_seat_removed_30d', 'act_seat_removed_per_active_day_30d', 'act_seat_removed_trend_7v7', 'act_seat_removed_days_since_last')
>>> s.directions["act_seat_removed_30d"], s.directions["act_seat_removed_days_since_last"]
(1, -1)
>>> "act_export_report_30d" in s.directions   # no declared direction: unconstrained
False
>>> DEFAULT_SPEC.version == FEATURE_SET_VERSION and len(DEFAULT_SPEC.names) == 29
True

Per-action features of action ``a`` at time ``t`` (windows as in the registry: right-closed
days ending with the as-of day):

===================================== ============================================================
``act_<a>_1d`` / ``_7d/_14d/_30d``    events of ``a`` in the last 1 / 7 / 14 / 30 days
``act_<a>_per_active_day_30d``        ``act_<a>_30d`` / ``activity_days_30d`` (0 without activity)
``act_<a>_trend_7v7``                 ln((1 + events in days 1-7) / (1 + events in days 8-14))
``act_<a>_days_since_last``           days since the last ``a``; since signup if none; 0 if neither
``activity_days_7d`` / ``_30d``       days with at least one declared-action event
===================================== ============================================================

The spec is stored in the topic's import profile (``<data_dir>/import/<topic>/profile.json``,
key ``feature_spec``) and with every model (tag ``feature_set_version`` = :attr:`version`,
plus the spec itself); :func:`spec_for` is the one loader training and the stream use.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from pipeline.errors import FeatureError
from pipeline.events import MAX_ACTION_LENGTH, valid_action
from pipeline.features.registry import ENGINE_VERSION, FEATURE_NAMES, FEATURE_SET_VERSION

MAX_ACTIONS: Final = 32  # documented in docs/import.md; 32 actions -> 226 action features
ACTION_WINDOWS: Final = (1, 7, 14, 30)
ACTION_FEATURES: Final = (
    *(f"{w}d" for w in ACTION_WINDOWS), "per_active_day_30d", "trend_7v7", "days_since_last",
)
ACTIVITY_FEATURES: Final = ("activity_days_7d", "activity_days_30d")
# What the XGBoost spec's monotone constraints have always said about built-in features
# (models/xgboost.yaml): more failed payments / tickets never lower the risk, a steeper
# drop in engagement never lowers it either.
BUILTIN_DIRECTIONS: Final[Mapping[str, int]] = {
    "payments_failed_30d": 1, "last_payment_failed": 1, "tickets_7d": 1, "tickets_30d": 1,
    "sessions_trend_7v7": -1, "watch_trend_7v7": -1,
}
SPEC_TAG: Final = "feature_spec"  # MLflow tag holding the spec's JSON (the version is FEATURE_SET_TAG)
SPEC_FORMAT: Final = 1
_DIRECTION_WORDS: Final = {"raises": 1, "lowers": -1}


@dataclass(frozen=True)
class Action:
    """One declared action; ``direction`` +1: more of it raises churn, -1 lowers it, 0 unknown."""

    name: str
    direction: int = 0

    def __post_init__(self) -> None:
        if not valid_action(self.name):
            raise FeatureError(
                f"action name {self.name!r} is not allowed: use 1-{MAX_ACTION_LENGTH} lower-case letters, "
                "digits or '_', starting with a letter (e.g. export_report)"
            )
        if self.direction not in (-1, 0, 1):
            raise FeatureError(f"action {self.name!r}: direction must be +1 (raises churn), -1 (lowers) or 0, "
                               f"got {self.direction!r}")

    def feature_names(self) -> tuple[str, ...]:
        return tuple(f"act_{self.name}_{suffix}" for suffix in ACTION_FEATURES)


def direction_of(word: Any) -> int:
    """``raises`` -> +1, ``lowers`` -> -1 (the mapping's words)."""
    if word not in _DIRECTION_WORDS:
        raise FeatureError(f"direction {word!r}: use `raises` (more of it, more churn) or `lowers`")
    return _DIRECTION_WORDS[word]


@dataclass(frozen=True)
class FeatureSpec:
    """The features of one topic: built-in names (registry order) plus declared actions."""

    builtin: tuple[str, ...] = FEATURE_NAMES
    actions: tuple[Action, ...] = ()

    def __post_init__(self) -> None:
        unknown = [f for f in self.builtin if f not in FEATURE_NAMES]
        if unknown:
            raise FeatureError(f"feature spec names unknown built-in feature(s) {unknown}; known: {list(FEATURE_NAMES)}")
        object.__setattr__(self, "builtin", tuple(f for f in FEATURE_NAMES if f in set(self.builtin)))
        names = [a.name for a in self.actions]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise FeatureError(f"action(s) {dup} declared more than once; declare each action once")
        if len(self.actions) > MAX_ACTIONS:
            raise FeatureError(
                f"{len(self.actions)} actions declared, at most {MAX_ACTIONS} are supported (each adds "
                f"{len(ACTION_FEATURES)} features); merge rare actions or map them to a catch-all `other`"
            )

    @classmethod
    def from_vocabulary(cls, actions: Iterable[str | Action], builtin: Iterable[str] = FEATURE_NAMES) -> FeatureSpec:
        return cls(tuple(builtin), tuple(a if isinstance(a, Action) else Action(a) for a in actions))

    # -- what others use -------------------------------------------------------------
    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.actions)

    @cached_property
    def action_index(self) -> dict[str, int]:
        """action name -> its code in the engine (position in the vocabulary)."""
        return {a.name: i for i, a in enumerate(self.actions)}

    @cached_property
    def action_columns(self) -> tuple[str, ...]:
        """The engine's action block, in kernel order (empty without actions)."""
        if not self.actions:
            return ()
        return (*ACTIVITY_FEATURES, *(f for a in self.actions for f in a.feature_names()))

    @cached_property
    def engine_columns(self) -> tuple[str, ...]:
        """Every column the engine computes for this topic: all built-ins, then the action block."""
        return (*FEATURE_NAMES, *self.action_columns)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """The topic's features, in order: what models train and score on."""
        return (*self.builtin, *self.action_columns)

    @cached_property
    def directions(self) -> dict[str, int]:
        """feature -> +1 / -1 for monotone constraints: the built-in ones as models/xgboost.yaml
        always had them, per-action ones only for actions whose mapping declared a direction
        (counts, rate and trend follow it; days since last goes the other way)."""
        out = {f: d for f, d in BUILTIN_DIRECTIONS.items() if f in self.builtin}
        for a in self.actions:
            if a.direction:
                for f in a.feature_names():
                    out[f] = -a.direction if f.endswith("_days_since_last") else a.direction
        return out

    @property
    def is_default(self) -> bool:
        return not self.actions and self.builtin == FEATURE_NAMES

    @cached_property
    def version(self) -> str:
        """Content hash; the simulator's spec keeps ``FEATURE_SET_VERSION`` exactly."""
        if self.is_default:
            return FEATURE_SET_VERSION
        payload = json.dumps({"base": FEATURE_SET_VERSION, "engine": ENGINE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPEC_FORMAT, "builtin": list(self.builtin),
                "actions": [{"name": a.name, "direction": a.direction} for a in self.actions],
                "action_windows": list(ACTION_WINDOWS), "action_features": list(ACTION_FEATURES)}

    def document(self) -> dict[str, Any]:
        """The spec as stored with a profile / a model: content plus version and names."""
        return self.to_dict() | {"version": self.version, "names": list(self.names),
                                 "directions": self.directions}

    def to_json(self) -> str:
        return json.dumps(self.document(), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FeatureSpec:
        if doc.get("format", SPEC_FORMAT) != SPEC_FORMAT:
            raise FeatureError(f"feature spec format {doc.get('format')!r}; this code reads format {SPEC_FORMAT}")
        if list(doc.get("action_features", ACTION_FEATURES)) != list(ACTION_FEATURES) or \
                list(doc.get("action_windows", ACTION_WINDOWS)) != list(ACTION_WINDOWS):
            raise FeatureError("feature spec was written for other per-action features than this code computes")
        spec = cls(tuple(doc.get("builtin", FEATURE_NAMES)),
                   tuple(Action(str(a["name"]), int(a.get("direction", 0))) for a in doc.get("actions", ())))
        stored = doc.get("version")
        if stored is not None and stored != spec.version:
            raise FeatureError(f"feature spec claims version {stored} but its content hashes to {spec.version}: "
                               "it was edited by hand or written by other code")
        return spec

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise FeatureError(f"unreadable feature spec ({exc}); re-run `churn import`") from None


DEFAULT_SPEC: Final = FeatureSpec()
PROFILE_KEY: Final = "feature_spec"


def spec_from_profile(profile: Mapping[str, Any] | None) -> FeatureSpec:
    """The spec recorded in an import profile; the default spec without one (simulated topic)."""
    if not profile or PROFILE_KEY not in profile:
        return DEFAULT_SPEC
    return FeatureSpec.from_dict(profile[PROFILE_KEY])


class UnreadableProfileError(FeatureError):
    """An import profile that cannot be read or holds no usable feature spec (the message is why)."""


def read_profile(path: Path) -> dict[str, Any] | None:
    """The import profile at ``path`` with its feature spec checked, None when there is no file;
    :class:`UnreadableProfileError` for a file that is not one (torn, not UTF-8, another shape)."""
    try:
        profile = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UnreadableProfileError(str(exc)) from None
    if not isinstance(profile, dict) or not isinstance(profile.get(PROFILE_KEY, {}), dict):
        raise UnreadableProfileError(f"not an import profile: no object with a {PROFILE_KEY!r} object")
    try:
        spec_from_profile(profile)
    except (FeatureError, KeyError, TypeError, ValueError) as exc:
        raise UnreadableProfileError(str(exc)) from None
    return profile


def spec_for(data_dir: Path | str, topic: str, log: Any = None) -> FeatureSpec:
    """The feature spec of ``topic`` under ``data_dir``: from its import profile
    (``<data_dir>/import/<topic>/profile.json``), or the built-in default (a simulated topic).

    A profile that is unreadable, or missing beside a ledger that records finished imports,
    is an error naming the way back (:meth:`pipeline.ingest.ledger.Ledger.profile_remedy`):
    the default spec would silently train and score imported events with the simulator's
    features. With ``log`` (the topic opened), the profile must belong to it: a topic deleted and
    refilled since (``churn simulate`` into the same name, another log backend) would
    otherwise be trained and scored with another source's churn definition and actions.
    That is refused, saying the way out (:meth:`pipeline.ingest.ledger.Ledger.stale_for`)."""
    from pipeline.ingest.ledger import Ledger  # the import builds on this module

    folder = Path(data_dir) / "import" / topic
    path = folder / "profile.json"
    ledger = Ledger(folder)
    try:
        profile = read_profile(path)
    except UnreadableProfileError as exc:
        raise FeatureError(f"import profile {path} is unreadable ({exc}); {ledger.profile_remedy(topic)}") from None
    done = len(ledger.finished()) if profile is None else 0
    if profile is None and not done:
        return DEFAULT_SPEC  # a simulated topic
    why = ledger.stale_for(log) if log is not None else None
    if why is not None:
        what = f"import ledger {ledger.path}" if profile is None else f"import profile {path}"
        raise FeatureError(
            f"the {what} describes events topic {topic!r} does not hold ({why}): the topic "
            "was deleted and refilled since (e.g. by `churn simulate`), or this is another log. Its churn "
            f"definition and actions would be applied to other events. Move the import state aside (`mv "
            f"{folder} {folder}.old`) to use the topic as it is, or point at the log that holds the imports"
        )
    if profile is None:
        raise FeatureError(
            f"import profile {path} is missing, but the import ledger {ledger.path} records {done} finished "
            f"import(s) into topic {topic!r}: without it their events would be read with the simulator's feature "
            f"set; {ledger.profile_remedy(topic)}"
        )
    return spec_from_profile(profile)


def spec_for_log(log: Any) -> FeatureSpec:
    """The feature spec of a file log's topic (``<data_dir>/log/<topic>``: that data dir's import
    profile); the default spec for logs without a data dir (memory, Kafka: use :func:`spec_for`)."""
    path = getattr(log, "path", None)
    if path is None:
        return DEFAULT_SPEC
    return spec_for(Path(path).parent.parent, log.name, log)
