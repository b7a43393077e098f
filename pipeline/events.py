"""The event contract: versioned, strictly validated subscriber-activity records.

One event is one JSON object on one line. Every event carries ``type``, ``event_id``,
``user_id``, ``ts`` (timezone-aware event time, normalised to UTC) and
``schema_version``; the remaining fields depend on the type (see ``EVENT_FIELDS``).

Decoding is strict and typed (msgspec): a wrong type, a missing or unknown field, an
unknown event type, a naive timestamp or a negative amount raises
:class:`~pipeline.errors.EventDecodeError` naming the field and the value. Nothing is
silently defaulted.

>>> e = Session(event_id="e1", user_id="u1", ts=datetime(2026, 1, 1, tzinfo=UTC),
...             schema_version=1, watch_minutes=42.5, device="tv")
>>> decode(encode(e)) == e
True
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from pipeline.errors import EventDecodeError

SCHEMA_VERSION: Final = 1

Plan = Literal["basic", "standard", "premium"]
PLANS: Final[tuple[str, ...]] = ("basic", "standard", "premium")

# Field constraints. Upper bounds also reject inf and absurd values.
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Money = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
Minutes = Annotated[float, msgspec.Meta(ge=0, le=1440)]
Version = Annotated[int, msgspec.Meta(ge=1, le=SCHEMA_VERSION)]
# A source-defined action name (``activity`` events): lower-case letters, digits and ``_``,
# starting with a letter, so it is safe inside feature names (``act_<action>_7d``), column
# names, MLflow tags and file names.
MAX_ACTION_LENGTH: Final = 40
ACTION_PATTERN: Final = r"^[a-z][a-z0-9_]*$"
ActionName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ACTION_LENGTH, pattern=ACTION_PATTERN)]
ActionValue = Annotated[float, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]


class _Event(
    msgspec.Struct,
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=False,
):
    event_id: Id
    user_id: Id
    ts: UtcTime
    schema_version: Version

    def __post_init__(self) -> None:
        # Accept any explicit offset on input, store UTC (the contract's time zone).
        if self.ts.tzinfo is not UTC:
            self.ts = self.ts.astimezone(UTC)

    @property
    def type(self) -> str:
        return self.__struct_config__.tag  # type: ignore[return-value]


class Signup(_Event, tag="signup"):
    plan: Plan


class Session(_Event, tag="session"):
    watch_minutes: Minutes
    device: Label


class Payment(_Event, tag="payment"):
    amount: Money
    plan: Plan


class PaymentFailed(_Event, tag="payment_failed"):
    amount: Money
    reason: Label


class PlanChange(_Event, tag="plan_change"):
    from_plan: Plan
    to_plan: Plan

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.from_plan == self.to_plan:
            raise ValueError(f"`to_plan` equals `from_plan` ({self.to_plan!r}); not a plan change")


class SupportTicket(_Event, tag="support_ticket"):
    category: Label


class Cancel(_Event, tag="cancel"):
    reason: Literal["voluntary", "involuntary"]


class Activity(_Event, tag="activity"):
    """A source's own action (``action`` is one of the topic's declared vocabulary, see
    ``docs/import.md``), with an optional number (an amount, a duration, a quantity)."""

    action: ActionName
    value: ActionValue | None = None


Event = Signup | Session | Payment | PaymentFailed | PlanChange | SupportTicket | Cancel | Activity

EVENT_TYPES: Final[dict[str, type[_Event]]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Signup, Session, Payment, PaymentFailed, PlanChange, SupportTicket, Cancel, Activity)
}
COMMON_FIELDS: Final = ("event_id", "user_id", "ts", "schema_version")
EVENT_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    name: tuple(f for f in cls.__struct_fields__ if f not in COMMON_FIELDS)
    for name, cls in EVENT_TYPES.items()
}

# Fields that may be omitted (they have a default): the import mapping need not provide them.
OPTIONAL_FIELDS: Final[dict[str, frozenset[str]]] = {
    name: frozenset(f for f, d in zip(cls.__struct_fields__[::-1], cls.__struct_defaults__[::-1], strict=False))
    for name, cls in EVENT_TYPES.items()
}

_ALL_FIELDS: Final = frozenset(f for cls in EVENT_TYPES.values() for f in cls.__struct_fields__)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
_lenient = msgspec.json.Decoder()


def encode(event: Event) -> bytes:
    """One event as compact JSON (no trailing newline)."""
    return _encoder.encode(event)


def encode_lines(events: list[Event]) -> bytes:
    """Many events as JSON lines, each terminated by ``\\n``."""
    buf = bytearray()
    for e in events:
        _encoder.encode_into(e, buf, -1)
        buf += b"\n"
    return bytes(buf)


def decode(raw: bytes | str) -> Event:
    """Strictly decode one JSON event; raise ``EventDecodeError`` on anything invalid."""
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _explain(raw, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise EventDecodeError(f"malformed JSON: {exc}", "$") from None
    except (ValueError, TypeError, OverflowError) as exc:  # from __post_init__
        raise EventDecodeError(str(exc), "$") from None


def try_decode(raw: bytes | str) -> Event | EventDecodeError:
    """Like :func:`decode` but returns the error instead of raising (for hot loops)."""
    try:
        return _decoder.decode(raw)
    except Exception:  # noqa: BLE001 - re-run through decode() to build the typed error
        try:
            return decode(raw)
        except EventDecodeError as err:
            return err


def _explain(raw: bytes | str, message: str) -> EventDecodeError:
    """Turn msgspec's ``"Expected ... - at `$.field`"`` into field + value."""
    reason, _, path = message.partition(" - at `")
    path = path.rstrip("`") or "$"
    if path == "$":  # e.g. "Object missing required field `device`": name the field
        named = re.search(r"`(\w+)`", reason)
        if named and (named.group(1) in _ALL_FIELDS or "field `" in reason):
            path = f"$.{named.group(1)}"
    value: Any = None
    if path.startswith("$.") and "[" not in path:
        try:
            obj = _lenient.decode(raw)
            if isinstance(obj, dict):
                value = obj.get(path[2:])
        except msgspec.DecodeError:
            value = None
    if reason.startswith("Invalid value") and path == "$.type":
        reason = f"unknown event type; expected one of {sorted(EVENT_TYPES)}"
    return EventDecodeError(reason, path, value)


def valid_action(name: object) -> bool:
    """Whether ``name`` is a valid action name (the ``activity.action`` rule)."""
    return (isinstance(name, str) and 0 < len(name) <= MAX_ACTION_LENGTH
            and re.fullmatch(ACTION_PATTERN, name) is not None)


def to_builtins(event: Event) -> dict[str, Any]:
    """A plain dict (``type`` included), e.g. for DataFrames and display."""
    return msgspec.to_builtins(event)


class _TsOnly(msgspec.Struct):
    ts: UtcTime


_ts_decoder = msgspec.json.Decoder(_TsOnly)


def event_time(raw: bytes | str) -> datetime | None:
    """Only the ``ts`` of an encoded event (cheap), or ``None`` if it has no valid one."""
    try:
        return _ts_decoder.decode(raw).ts.astimezone(UTC)
    except (msgspec.DecodeError, ValueError):
        return None
