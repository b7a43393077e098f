"""The mapping file: how a foreign event file becomes events of the contract.

Validated once, before any row is read; every error names the key at fault, e.g.
``mapping sparkify.yaml: timestamp.timezone: unknown time zone 'Europe/Berln'``.

A minimal mapping (``docs/import.md`` documents every key)::

    user_id: userId
    timestamp: {column: ts, epoch_unit: ms}
    event_type:
      column: page
      values: {NextSong: session, Cancellation Confirmation: cancel}
      unmapped: drop
    fields:
      session: {watch_minutes: {column: length, scale: 0.0166667}, device: {const: unknown}}
      cancel: {reason: {const: voluntary}}
    signup: {synthesize: first_event, plan: {const: basic}}
    churn: {definition: cancel}

A source's own actions become ``activity`` events: map their event-type values to
``activity`` and declare the vocabulary (the action defaults to the source value; set
``fields.activity.action`` to read it from another column or give a ``const``)::

    event_type: {column: event, values: {export: activity, invite: activity}, unmapped: reject}
    actions:
      declare: [export, {name: invite, direction: lowers}]   # direction: raises | lowers churn
      undeclared: reject          # or `other`: a catch-all action named other

A field is a column name, ``{column, values, scale, default}`` or ``{const}``. Source
values are compared as text (``1`` and ``"1"`` are the same key). ``default`` fills empty
cells only; a value missing from ``values`` is a rejected row, never a silent default.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from pipeline.errors import FeatureError
from pipeline.events import EVENT_FIELDS, EVENT_TYPES, OPTIONAL_FIELDS, valid_action
from pipeline.features.spec import MAX_ACTIONS, Action, direction_of
from pipeline.ingest.errors import MappingError

EPOCH_UNITS: Final = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
FORMATS: Final = ("auto", "csv", "parquet", "jsonl")
_TOP: Final = {"version", "name", "format", "csv", "user_id", "timestamp", "event_type", "fields", "signup",
               "churn", "max_rejected_share", "max_future_skew_hours", "actions"}
# rows dated more than this after the import's clock are rejected as future (a clock or zone
# error in the export); the stream's admission has the same default (max_future_skew_hours)
DEFAULT_FUTURE_SKEW_HOURS: Final = 24.0
MAX_FUTURE_SKEW_HOURS: Final = 876_000  # 100 years: past any clock or zone error
CATCH_ALL: Final = "other"  # the action undeclared source actions become with `actions.undeclared: other`
_MISSING = object()


@dataclass(frozen=True)
class FieldSpec:
    """Where one event field comes from: a source column (mapped, scaled, defaulted) or a constant."""

    key: str  # the mapping key, for messages: fields.session.device
    column: str | None = None
    const: Any = None
    values: Mapping[str, Any] | None = None
    scale: float | None = None
    default: Any = None

    @property
    def from_column(self) -> bool:
        return self.column is not None


@dataclass(frozen=True)
class TypeRule:
    """One source event-type value: its contract type and per-value field overrides."""

    type: str
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceMapping:
    name: str
    format: str
    csv_delimiter: str | None  # as given; None: by the file's name (:meth:`delimiter_for`)
    user_id: str
    ts_column: str
    epoch_unit: str | None
    ts_format: str | None
    timezone: str | None
    type_column: str
    type_values: Mapping[str, TypeRule]
    unmapped: Literal["drop", "reject"]
    fields: Mapping[str, Mapping[str, FieldSpec]]
    synthesize_signup: bool
    signup_plan: FieldSpec | None
    churn: Literal["cancel", "inactivity"]
    inactive_days: int | None
    max_rejected_share: float
    digest: str  # hash of the validated content: part of the import's identity
    actions: tuple[Action, ...] = ()  # the declared vocabulary (+ the catch-all, if used), in order
    undeclared: Literal["reject", "other"] = "reject"
    csv_decimal: str = "."  # a text file's decimal mark in number fields ("," : 3,5 is 3.5)
    max_future_skew_hours: float = DEFAULT_FUTURE_SKEW_HOURS
    file: str | None = None  # the file it was read from (absolute): mappings of one name are told apart by it

    @property
    def action_names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.actions)

    def delimiter_for(self, path: str | os.PathLike[str]) -> str:
        """The CSV delimiter for ``path``: ``csv.delimiter`` if the mapping gives one, else a
        tab for a ``.tsv`` file (gzipped or not) and ``,`` for any other."""
        if self.csv_delimiter is not None:
            return self.csv_delimiter
        return "\t" if os.fspath(path).lower().removesuffix(".gz").endswith(".tsv") else ","

    def fields_for(self, source_value: str) -> dict[str, FieldSpec]:
        rule = self.type_values[source_value]
        return {**self.fields.get(rule.type, {}), **rule.fields}

    @property
    def target_types(self) -> set[str]:
        return {r.type for r in self.type_values.values()}

    def columns(self) -> list[str]:
        """Every source column the mapping reads (for projection and presence checks)."""
        cols = [self.user_id, self.ts_column, self.type_column]
        specs = [s for per in self.fields.values() for s in per.values()]
        specs += [s for r in self.type_values.values() for s in r.fields.values()]
        if self.signup_plan is not None:
            specs.append(self.signup_plan)
        cols += [s.column for s in specs if s.column is not None]
        return list(dict.fromkeys(cols))

    def source_values(self) -> frozenset[str]:
        """Every source text the mapping names (event-type values, ``values`` keys of fields):
        a reader must keep these as text even where it would read them as missing (``NA``)."""
        specs = [s for per in self.fields.values() for s in per.values()]
        specs += [s for r in self.type_values.values() for s in r.fields.values()]
        if self.signup_plan is not None:
            specs.append(self.signup_plan)
        return frozenset(self.type_values).union(*(s.values for s in specs if s.values is not None))

    def source_values_by_column(self) -> dict[str, frozenset[str]]:
        """:meth:`source_values` per source column: a marker such as ``NA`` named for one
        column is text there and still a missing cell everywhere else."""
        out: dict[str, set[str]] = {self.type_column: set(self.type_values)}
        specs = [s for per in self.fields.values() for s in per.values()]
        specs += [s for r in self.type_values.values() for s in r.fields.values()]
        if self.signup_plan is not None:
            specs.append(self.signup_plan)
        for s in specs:
            if s.column is not None and s.values is not None:
                out.setdefault(s.column, set()).update(s.values)
        return {c: frozenset(v) for c, v in out.items()}

    def column_keys(self) -> dict[str, str]:
        """column -> the first mapping key that names it (for 'column not found' errors)."""
        out = {self.user_id: "user_id", self.ts_column: "timestamp.column", self.type_column: "event_type.column"}
        specs = [s for per in self.fields.values() for s in per.values()]
        specs += [s for r in self.type_values.values() for s in r.fields.values()]
        if self.signup_plan is not None:
            specs.append(self.signup_plan)
        for s in specs:
            if s.column is not None:
                out.setdefault(s.column, s.key)
        return out




def load_mapping(path: Path) -> SourceMapping:
    """Read and validate a YAML mapping file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} not found") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping {path.name}: not valid YAML: {exc}".replace("\n", " ")) from None
    return replace(parse_mapping(raw, path.stem, where=f"mapping {path.name}"), file=str(path.absolute()))


def parse_mapping(raw: Any, name: str = "mapping", where: str = "mapping") -> SourceMapping:
    """Validate a mapping given as plain data (what YAML produced), section by section."""

    def fail(key: str, msg: str) -> MappingError:
        return MappingError(f"{where}: {key}: {msg}")

    if raw is None:
        raise MappingError(f"{where}: the mapping is empty; see docs/import.md for its keys (user_id, timestamp, "
                           "event_type, fields, ...)")
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    fmt, delim, decimal = _file_format(raw, fail)
    user_id = _column(raw.get("user_id", _MISSING), "user_id", fail)
    ts_col, unit, fmt_s, tz = _timestamp(raw.get("timestamp", _MISSING), fail)
    type_col, unmapped, values = _event_type(raw.get("event_type", _MISSING), fail)
    fields = _type_fields(raw.get("fields") or {}, fail)
    rules = _type_rules(values, fail)
    synth, plan = _signup(raw.get("signup") or {}, fail)
    definition, days = _churn(raw.get("churn", _MISSING), rules, fail)
    _check_users_can_start(rules, synth, plan, definition, fail)
    actions, undeclared = _actions(raw.get("actions", _MISSING), rules, fail)
    _resolve_actions(rules, fields, actions, undeclared, fail)
    _check_required_fields(rules, fields, fail)
    share = _share(raw.get("max_rejected_share", 0.01), fail)
    skew = raw.get("max_future_skew_hours", DEFAULT_FUTURE_SKEW_HOURS)
    if (problem := future_skew_problem(skew)) is not None:
        raise fail("max_future_skew_hours", problem)
    m = SourceMapping(str(raw.get("name") or name), fmt, delim, user_id, ts_col, unit, fmt_s,
                      str(tz) if tz is not None else None, type_col, rules, unmapped, fields, synth == "first_event",
                      plan, definition, days, share, "", actions, undeclared, csv_decimal=decimal,
                      max_future_skew_hours=float(skew))
    try:
        canonical = json.dumps(_canonical(raw), sort_keys=True, default=str)
    except TypeError:  # keys of mixed types in a values table (YAML integers beside text): compared as text
        canonical = json.dumps(_canonical(raw, text_keys=True), sort_keys=True, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    object.__setattr__(m, "digest", digest)
    return m


def _file_format(raw: dict, fail) -> tuple[str, str | None, str]:
    """Top-level keys, version, ``format``, ``csv.delimiter`` and ``csv.decimal``."""
    unknown = sorted(set(map(str, raw)) - _TOP)
    if unknown:
        raise fail(unknown[0], f"unknown key; allowed: {sorted(_TOP)}")
    if raw.get("version", 1) != 1:
        raise fail("version", f"unsupported version {raw.get('version')!r}; this importer reads version 1")
    fmt = raw.get("format", "auto")
    if fmt not in FORMATS:
        raise fail("format", f"{fmt!r} is not one of {list(FORMATS)}")
    csv_opts = raw.get("csv") or {}
    if not isinstance(csv_opts, dict) or set(csv_opts) - {"delimiter", "decimal"}:
        raise fail("csv", "expected {delimiter: ',', decimal: '.'}")
    delim = csv_opts.get("delimiter")
    if delim is not None and len(str(delim)) != 1:
        raise fail("csv.delimiter", f"must be one character, got {str(delim)!r}")
    decimal = csv_opts.get("decimal", ".")
    if decimal not in (".", ","):
        raise fail("csv.decimal", f"'.' or ',' (the decimal mark of number fields), got {decimal!r}")
    if decimal == "," and delim in (None, ","):
        raise fail("csv.decimal", "a decimal comma needs another delimiter: give csv.delimiter (e.g. ';')")
    return fmt, None if delim is None else str(delim), decimal


def _timestamp(ts: Any, fail) -> tuple[str, str | None, str | None, Any]:
    """``timestamp``: (column, epoch unit, text format, time zone)."""
    if ts is _MISSING:
        raise fail("timestamp", "required: {column: ..., epoch_unit: s|ms|us|ns} or {column: ..., format: ..., timezone: ...}")
    if isinstance(ts, str):
        ts = {"column": ts}
    if not isinstance(ts, dict):
        raise fail("timestamp", f"expected a mapping, got {ts!r}")
    bad = sorted(set(ts) - {"column", "epoch_unit", "format", "timezone"})
    if bad:
        raise fail(f"timestamp.{bad[0]}", "unknown key; allowed: column, epoch_unit, format, timezone")
    ts_col = _column(ts.get("column", _MISSING), "timestamp.column", fail)
    unit, fmt_s, tz = ts.get("epoch_unit"), ts.get("format"), ts.get("timezone")
    if unit is not None and fmt_s is not None:
        raise fail("timestamp.epoch_unit", "give either epoch_unit (numbers) or format (text), not both")
    if unit is not None:
        if unit not in EPOCH_UNITS:
            raise fail("timestamp.epoch_unit", f"{unit!r} is not one of {list(EPOCH_UNITS)}")
        if tz is not None:
            raise fail("timestamp.timezone", "epoch timestamps are UTC by definition; remove the time zone")
    else:
        fmt_s = "ISO8601" if fmt_s is None else fmt_s
        if not isinstance(fmt_s, str) or not fmt_s:
            raise fail("timestamp.format", f"expected a strptime format or ISO8601, got {fmt_s!r}")
    if tz is not None:
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise fail("timestamp.timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin or UTC)") from None
    return ts_col, unit, fmt_s, tz


def _event_type(et: Any, fail) -> tuple[str, str, dict]:
    """``event_type``: (column, unmapped rule, the raw values table)."""
    if not isinstance(et, dict):
        raise fail("event_type", "required: {column: ..., values: {source value: event type}, unmapped: drop|reject}")
    bad = sorted(set(et) - {"column", "values", "unmapped"})
    if bad:
        raise fail(f"event_type.{bad[0]}", "unknown key; allowed: column, values, unmapped")
    type_col = _column(et.get("column", _MISSING), "event_type.column", fail)
    unmapped = et.get("unmapped", _MISSING)
    if unmapped not in ("drop", "reject"):
        raise fail("event_type.unmapped", "required: `drop` (skip rows whose type is not in values, counted) or "
                   "`reject` (dead-letter them)")
    values = et.get("values")
    if not isinstance(values, dict) or not values:
        raise fail("event_type.values", "expected a non-empty mapping {source value: event type}")
    _source_values(values, "event_type.values", fail)
    return type_col, unmapped, values


def _type_fields(fields_raw: Any, fail) -> dict[str, dict[str, FieldSpec]]:
    """``fields``: per event type, where each field comes from."""
    if not isinstance(fields_raw, dict):
        raise fail("fields", "expected {event type: {field: spec}}")
    fields: dict[str, dict[str, FieldSpec]] = {}
    for t, per in fields_raw.items():
        if t not in EVENT_TYPES:
            raise fail(f"fields.{t}", f"unknown event type; one of {sorted(EVENT_TYPES)}")
        fields[t] = _fields(per, t, f"fields.{t}", fail)
    return fields


def _type_rules(values: dict, fail) -> dict[str, TypeRule]:
    """``event_type.values``: source value (as text) -> target type and its field overrides."""
    rules: dict[str, TypeRule] = {}
    for src, target in values.items():
        key = f"event_type.values.{src}"
        if isinstance(target, str):
            target = {"type": target}
        if not isinstance(target, dict) or set(target) - {"type", "fields"}:
            raise fail(key, "expected an event type or {type: ..., fields: {...}}")
        t = target.get("type")
        if t not in EVENT_TYPES:
            raise fail(key, f"{t!r} is not an event type; one of {sorted(EVENT_TYPES)}")
        rules[_text(src)] = TypeRule(t, _fields(target.get("fields") or {}, t, f"{key}.fields", fail))
    return rules


def _signup(signup: Any, fail) -> tuple[str, FieldSpec | None]:
    """``signup``: (synthesize rule, plan field)."""
    if not isinstance(signup, dict) or set(signup) - {"synthesize", "plan"}:
        raise fail("signup", "expected {synthesize: first_event|none, plan: <field>}")
    synth = signup.get("synthesize", "none")
    if synth not in ("first_event", "none"):
        raise fail("signup.synthesize", f"{synth!r}: use first_event (a signup at each user's first row) or none")
    plan = _spec(signup["plan"], "signup.plan", fail) if "plan" in signup else None
    if plan is not None and plan.from_column and plan.default is None:
        raise fail("signup.plan", "a column-based plan needs a `default` (for users whose first row has no plan)")
    return synth, plan


def _churn(churn: Any, rules: Mapping[str, TypeRule], fail) -> tuple[str, int | None]:
    """``churn``: (definition, inactive days), consistent with what the values map to cancel."""
    if not isinstance(churn, dict) or churn.get("definition") not in ("cancel", "inactivity"):
        raise fail("churn.definition", "required: `cancel` (explicit cancel events) or `inactivity` "
                   "(no activity for churn.inactive_days days)")
    bad = sorted(set(churn) - {"definition", "inactive_days"})
    if bad:
        raise fail(f"churn.{bad[0]}", "unknown key; allowed: definition, inactive_days")
    definition = churn["definition"]
    days = churn.get("inactive_days")
    if definition == "inactivity":
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 3650:
            raise fail("churn.inactive_days", f"an integer number of days 1..3650 is required, got {days!r}")
        cancels = [s for s, r in rules.items() if r.type == "cancel"]
        if cancels:
            raise fail(f"event_type.values.{cancels[0]}", "maps to cancel, but churn.definition is inactivity "
                       "(churn is derived from inactivity); map it to another type or use definition: cancel")
    else:
        if days is not None:
            raise fail("churn.inactive_days", "only for definition: inactivity")
        if "cancel" not in {r.type for r in rules.values()}:
            raise fail("churn.definition", "is cancel, but no event_type.values entry maps to cancel; map the "
                       "source's cancellation value or use definition: inactivity")
    return definition, days


def _check_users_can_start(rules: Mapping[str, TypeRule], synth: str, plan: FieldSpec | None, definition: str,
                           fail) -> None:
    """Users become active by a mapped signup or a synthesized one (which needs a plan)."""
    has_signup = any(r.type == "signup" for r in rules.values())
    if synth == "none" and not has_signup:
        raise fail("signup.synthesize", "no event_type.values entry maps to signup, so users would never be "
                   "active; set synthesize: first_event")
    if (synth == "first_event" or definition == "inactivity") and plan is None:
        raise fail("signup.plan", "required to synthesize signups (first_event or inactivity reactivation)")


def _resolve_actions(rules: dict[str, TypeRule], fields: Mapping[str, Mapping[str, FieldSpec]],
                     actions: tuple[Action, ...], undeclared: str, fail) -> None:
    """Activity values without an action field take the source value as their action; a constant
    action must be declared (a column's actions are checked per row)."""
    for src, rule in rules.items():
        if rule.type == "activity" and "action" not in {**fields.get("activity", {}), **rule.fields}:
            rules[src] = TypeRule("activity", {**rule.fields, "action": FieldSpec(
                f"event_type.values.{src}", const=src)})
    for src, rule in rules.items():
        spec = {**fields.get("activity", {}), **rule.fields}.get("action") if rule.type == "activity" else None
        if spec is not None and spec.const is not None and spec.const not in {a.name for a in actions} \
                and undeclared == "reject":
            raise fail(spec.key if spec.key.startswith("fields") else f"event_type.values.{src}",
                       f"action {spec.const!r} is not in actions.declare; declare it (or set actions.undeclared: "
                       "other to count it as the catch-all `other`)")


def _check_required_fields(rules: Mapping[str, TypeRule], fields: Mapping[str, Mapping[str, FieldSpec]],
                           fail) -> None:
    """Every field of every target type is provided, by the type's fields or the value's overrides."""
    for src, rule in rules.items():
        have = {**fields.get(rule.type, {}), **rule.fields}
        missing = [f for f in EVENT_FIELDS[rule.type] if f not in have and f not in OPTIONAL_FIELDS[rule.type]]
        if missing:
            raise fail(f"fields.{rule.type}.{missing[0]}", f"required for event type {rule.type} "
                       f"(mapped from {src!r}); give a column or a const")


def _share(share: Any, fail) -> float:
    if not isinstance(share, int | float) or isinstance(share, bool) or not 0 <= share <= 1:
        raise fail("max_rejected_share", f"a fraction 0..1 is required, got {share!r}")
    return float(share)


def future_skew_problem(hours: Any) -> str | None:
    """Why ``hours`` is no ``max_future_skew_hours`` (the mapping key, or ``--max-future-skew-hours``);
    None if it is one."""
    if isinstance(hours, int | float) and not isinstance(hours, bool) and 0 <= hours <= MAX_FUTURE_SKEW_HOURS:
        return None
    return (f"a number of hours 0..{MAX_FUTURE_SKEW_HOURS:,} is required (rows dated more than that after the "
            f"import's clock are rejected as future; default {DEFAULT_FUTURE_SKEW_HOURS:g}), got {hours!r}")


def _actions(raw: Any, rules: Mapping[str, TypeRule], fail) -> tuple[tuple[Action, ...], str]:
    """The declared action vocabulary (``actions: {declare: [...], undeclared: reject|other}``)."""
    uses = [s for s, r in rules.items() if r.type == "activity"]
    if raw is _MISSING:
        if uses:
            raise fail("actions", f"event_type.values.{uses[0]} maps to activity, so the source's action vocabulary "
                       "must be declared: actions: {declare: [name, {name: ..., direction: raises|lowers}, ...]}")
        return (), "reject"
    if not uses:
        raise fail("actions", "declared, but no event_type.values entry maps to activity; map the source's "
                   "action values to activity (or remove actions)")
    if not isinstance(raw, dict) or set(raw) - {"declare", "undeclared"}:
        raise fail("actions", "expected {declare: [action, ...], undeclared: reject|other}")
    undeclared = raw.get("undeclared", "reject")
    if undeclared not in ("reject", CATCH_ALL):
        raise fail("actions.undeclared", f"{undeclared!r}: use reject (dead-letter rows whose action is not "
                   f"declared) or {CATCH_ALL} (count them as the catch-all action `{CATCH_ALL}`)")
    declare = raw.get("declare")
    if not isinstance(declare, list) or not declare:
        raise fail("actions.declare", "expected a non-empty list of action names or {name, direction}")
    out: list[Action] = []
    for k, item in enumerate(declare):
        key = f"actions.declare[{k}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "direction", "description"}:
            raise fail(key, "expected an action name or {name: ..., direction: raises|lowers, description: ...}")
        name = item["name"]
        if not valid_action(name):
            raise fail(f"{key}.name", f"{name!r} is not a valid action name: 1-40 lower-case letters, digits or '_', "
                       "starting with a letter (rename it with event_type.values ... fields: {action: {const: ...}})")
        try:
            direction = direction_of(item["direction"]) if "direction" in item else 0
        except FeatureError as exc:
            raise fail(f"{key}.direction", str(exc)) from None
        if name in {a.name for a in out}:
            raise fail(f"{key}.name", f"action {name!r} is declared twice")
        out.append(Action(name, direction))
    if undeclared == CATCH_ALL and CATCH_ALL not in {a.name for a in out}:
        out.append(Action(CATCH_ALL))
    if len(out) > MAX_ACTIONS:
        raise fail("actions.declare", f"{len(out)} actions (catch-all included), at most {MAX_ACTIONS} are supported: "
                   f"each adds 7 features; map rare actions to one name or use undeclared: {CATCH_ALL}")
    return tuple(out), undeclared


def _canonical(raw: dict, text_keys: bool = False) -> dict:
    """What changes the events: not the name, nor what an import is checked against (the
    rejected share; the future skew, relative to each run's clock anyway: a raised skew is
    no other mapping for files already imported); ``text_keys``: every key as text (a
    values table may hold YAML integers beside strings, which cannot be sorted)."""

    def texts(v: Any) -> Any:
        if isinstance(v, dict):
            return {_text(k): texts(x) for k, x in v.items()}
        if isinstance(v, list):
            return [texts(x) for x in v]
        return v

    kept = {k: v for k, v in raw.items() if k not in ("name", "max_rejected_share", "max_future_skew_hours")}
    return texts(kept) if text_keys else kept


def _source_values(values: dict, key: str, fail) -> None:
    """A values table's keys are source values: YAML reads unquoted yes/no/on/off/true/false
    as booleans (and they would be matched as "True"/"False", never the source's text)."""
    flags = [k for k in values if isinstance(k, bool)]
    if flags:
        raise fail(key, f"key {flags[0]!r} is a YAML boolean (unquoted yes/no/on/off/true/false): quote it, e.g. "
                        f"'{'yes' if flags[0] else 'no'}': ..., so it matches the source's text")


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _column(v: Any, key: str, fail) -> str:
    if v is _MISSING:
        raise fail(key, "required: the name of a source column")
    if not isinstance(v, str) or not v:
        raise fail(key, f"expected a column name, got {v!r}")
    return v


def _fields(per: Any, t: str, key: str, fail) -> dict[str, FieldSpec]:
    if not isinstance(per, dict):
        raise fail(key, f"expected {{field: spec}} for event type {t}")
    out = {}
    for f, spec in per.items():
        if f not in EVENT_FIELDS[t]:
            raise fail(f"{key}.{f}", f"event type {t} has no field {f!r}; its fields: {list(EVENT_FIELDS[t])}")
        out[f] = _spec(spec, f"{key}.{f}", fail)
    return out


def _spec(spec: Any, key: str, fail) -> FieldSpec:
    if isinstance(spec, str):
        return FieldSpec(key, column=spec)
    if not isinstance(spec, dict) or not spec:
        raise fail(key, "expected a column name, {column: ..., values/scale/default} or {const: ...}")
    bad = sorted(set(spec) - {"column", "const", "values", "scale", "default"})
    if bad:
        raise fail(f"{key}.{bad[0]}", "unknown key; allowed: column, const, values, scale, default")
    if ("column" in spec) == ("const" in spec):
        raise fail(key, "give exactly one of `column` or `const`")
    if "const" in spec:
        if set(spec) != {"const"}:
            raise fail(key, "`const` takes no values/scale/default")
        if spec["const"] is None:
            raise fail(f"{key}.const", "must not be empty")
        return FieldSpec(key, const=spec["const"])
    col = _column(spec["column"], f"{key}.column", fail)
    values = spec.get("values")
    if values is not None and (not isinstance(values, dict) or not values):
        raise fail(f"{key}.values", "expected a non-empty mapping {source value: value}")
    if values is not None:
        _source_values(values, f"{key}.values", fail)
    scale = spec.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int | float)
                              or not math.isfinite(scale) or scale <= 0):
        raise fail(f"{key}.scale", f"a positive number is required, got {scale!r}")
    if scale is not None and values is not None:
        raise fail(f"{key}.scale", "use either values or scale")
    return FieldSpec(key, column=col, values={_text(k): v for k, v in values.items()} if values else None,
                     scale=float(scale) if scale is not None else None, default=spec.get("default"))
