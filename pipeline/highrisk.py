"""What "high risk" means: one rule, resolved to one risk threshold, used everywhere.

At a 1-2 % churn base rate a calibrated model rarely gives anybody a risk of 0.5, so a
fixed 0.5 marks nobody and no reasons are ever stored. The rule is therefore relative
by default, and the stream's reasons, the closing report and the dashboard all resolve
the same :class:`HighRiskRule` to a :class:`ResolvedThreshold` and show it.

Kinds (text form for ``--high-risk`` / ``CHURN_STREAM_HIGH_RISK`` in brackets):

* ``multiple_of_base_rate`` (default, m = 3) [``multiple_of_base_rate:3`` or ``3x``]:
  risk >= m x the champion's training base rate (model-version tag ``train.base_rate``;
  a champion without it falls back to its ``test_base_rate`` tag, or is refused).
* ``top_percent`` [``top_percent:5`` or ``top5%``]: the top k % of active users by
  current risk; the threshold is the risk of the ceil(k % x n)-th riskiest one (ties
  at the threshold are all marked). The stream resolves it on the risks of the last
  10,000 active users each worker scored, the report and dashboard on the store's current
  scores.
* ``absolute`` [``absolute:0.5`` or ``0.5``]: risk >= a fixed value (the old behaviour).

>>> rule = HighRiskRule.parse("3x")
>>> rule.text, round(rule.resolve(base_rate=0.015).threshold, 4)
('multiple_of_base_rate:3', 0.045)
>>> HighRiskRule.parse("top5%").resolve(risks=np.arange(100) / 100).threshold
0.95
>>> HighRiskRule.parse("absolute:1.5")
Traceback (most recent call last):
...
pipeline.errors.ConfigError: high-risk rule absolute:1.5: the value is a risk in (0, 1], e.g. absolute:0.2
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from pipeline.errors import ConfigError, ModelMismatchError

Kind = Literal["multiple_of_base_rate", "top_percent", "absolute"]
KINDS: Final = ("multiple_of_base_rate", "top_percent", "absolute")
DEFAULT_TEXT: Final = "multiple_of_base_rate:3"
BASE_RATE_TAG: Final = "train.base_rate"  # set by the train flow on every registered version
# Older versions: the label rate of their test window (the train flow tags every test metric).
FALLBACK_BASE_RATE_TAGS: Final = ("test_base_rate",)
_EXAMPLES = "multiple_of_base_rate:3 (or 3x), top_percent:5 (or top5%), absolute:0.2 (or 0.2)"
_SHORT = (
    (re.compile(r"^(?P<v>[0-9.eE+-]+)\s*x(\s*(the\s+)?base[\s_-]*rate)?$"), "multiple_of_base_rate"),
    (re.compile(r"^top\s*(?P<v>[0-9.eE+-]+)\s*%?$"), "top_percent"),
    (re.compile(r"^(?P<v>[0-9.eE+-]+)$"), "absolute"),
)


@dataclass(frozen=True)
class HighRiskRule:
    kind: Kind = "multiple_of_base_rate"
    value: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"high-risk rule kind {self.kind!r}: use one of {', '.join(KINDS)}, e.g. {_EXAMPLES}")
        v = self.value
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if self.kind == "multiple_of_base_rate" and not (ok and v >= 1.0):
            raise ConfigError(
                f"high-risk rule multiple_of_base_rate:{v}: the multiple must be >= 1 (below 1 marks users "
                "less likely to churn than the average one), e.g. multiple_of_base_rate:3"
            )
        if self.kind == "top_percent" and not (ok and 0.0 < v <= 100.0):
            raise ConfigError(f"high-risk rule top_percent:{v}: the value is a percentage in (0, 100], e.g. top_percent:5")
        if self.kind == "absolute" and not (ok and 0.0 < v <= 1.0):
            raise ConfigError(f"high-risk rule absolute:{v}: the value is a risk in (0, 1], e.g. absolute:0.2")
        object.__setattr__(self, "value", float(v))

    # -- constructors --------------------------------------------------------------------
    @classmethod
    def multiple_of_base_rate(cls, m: float = 3.0) -> HighRiskRule:
        return cls("multiple_of_base_rate", m)

    @classmethod
    def top_percent(cls, k: float) -> HighRiskRule:
        return cls("top_percent", k)

    @classmethod
    def absolute(cls, threshold: float) -> HighRiskRule:
        return cls("absolute", threshold)

    @classmethod
    def parse(cls, text: str | HighRiskRule) -> HighRiskRule:
        """``kind:value`` or a short form (``3x``, ``top5%``, ``0.5``); see the module doc."""
        if isinstance(text, HighRiskRule):
            return text
        raw = str(text).strip().lower()
        kind: str | None = None
        value: str | None = None
        if ":" in raw:
            kind, _, value = (p.strip() for p in raw.partition(":"))
        else:
            for pattern, k in _SHORT:
                m = pattern.match(raw)
                if m:
                    kind, value = k, m.group("v")
                    break
        if kind is None or value is None:
            raise ConfigError(f"high-risk rule {text!r} is not understood: write one of {_EXAMPLES}")
        if kind not in KINDS:
            raise ConfigError(f"high-risk rule kind {kind!r} (in {text!r}): use one of {', '.join(KINDS)}, "
                              f"e.g. {_EXAMPLES}")
        try:
            number = float(value.rstrip("%x").strip())
        except ValueError:
            raise ConfigError(f"high-risk rule {text!r}: {value!r} is not a number; e.g. {_EXAMPLES}") from None
        return cls(kind, number)  # type: ignore[arg-type]

    # -- reading -------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The canonical text form (what ``parse`` reads back)."""
        return f"{self.kind}:{self.value:g}"

    @property
    def needs_base_rate(self) -> bool:
        return self.kind == "multiple_of_base_rate"

    @property
    def needs_risks(self) -> bool:
        return self.kind == "top_percent"

    def describe(self) -> str:
        if self.kind == "multiple_of_base_rate":
            return f"risk >= {self.value:g}x the champion's training base rate"
        if self.kind == "top_percent":
            return f"the top {self.value:g}% of active users by risk"
        return f"risk >= {self.value:g}"

    def check_base_rate(self, version: str, base_rate: float | None) -> None:
        """Raise ``ModelMismatchError`` if this rule cannot be resolved for champion ``version``."""
        if self.needs_base_rate and base_rate is None:
            raise ModelMismatchError(missing_base_rate(self, version))

    def resolve(
        self,
        *,
        base_rate: float | None = None,
        base_rate_source: str = "",
        risks: np.ndarray | None = None,
        version: str | None = None,
    ) -> ResolvedThreshold:
        """The threshold for this rule: ``base_rate`` for a multiple, ``risks`` (the active
        users' current risks) for a top share; raises ``ConfigError`` if one is missing."""
        if self.kind == "absolute":
            return ResolvedThreshold(self, self.value)
        if self.kind == "multiple_of_base_rate":
            if base_rate is None:
                raise ModelMismatchError(missing_base_rate(self, version))
            check_rate(base_rate, base_rate_source or "base rate")
            return ResolvedThreshold(self, min(self.value * base_rate, 1.0), base_rate, base_rate_source)
        if risks is None:
            raise ConfigError(f"high-risk rule {self.text} needs the current risks of the active users to resolve")
        r = np.asarray(risks, dtype=np.float64)
        n = len(r)
        if n == 0:
            return ResolvedThreshold(self, None, users=0)
        rank = top_rank(self.value, n)
        return ResolvedThreshold(self, float(np.partition(r, n - rank)[n - rank]), users=n)


def top_rank(percent: float, users: int) -> int:
    """How many users the top ``percent`` % of ``users`` are (at least one)."""
    return max(1, min(users, math.ceil(percent / 100.0 * users - 1e-9)))


def check_rate(rate: float, what: str) -> float:
    if not (isinstance(rate, int | float) and 0.0 < float(rate) < 1.0):
        raise ConfigError(f"{what} {rate!r} is not a churn rate in (0, 1); retrain the champion (`churn train`) "
                          "so it records its training base rate")
    return float(rate)


def missing_base_rate(rule: HighRiskRule, version: str | None) -> str:
    who = f"champion churn v{version}" if version else "the champion"
    return (
        f"high-risk rule {rule.text} needs the champion's training base rate, but {who} records none "
        f"(no {BASE_RATE_TAG!r} or {FALLBACK_BASE_RATE_TAGS[0]!r} tag). Retrain it with `churn train` "
        "(it records the base rate), or choose a rule that needs none: --high-risk top_percent:5 or "
        "--high-risk absolute:0.2 (env CHURN_STREAM_HIGH_RISK)."
    )


def base_rate_from_tags(tags: Mapping[str, Any]) -> tuple[float | None, str]:
    """(base rate, where it came from) of a registered model version's tags; (None, "")
    if it has none. ``train.base_rate`` first, then the test window's label rate."""
    for tag, source in ((BASE_RATE_TAG, "training base rate"),
                        *((t, "test-window base rate") for t in FALLBACK_BASE_RATE_TAGS)):  # fmt: skip
        raw = tags.get(tag)
        if raw in (None, ""):
            continue
        try:
            rate = float(raw)
        except (TypeError, ValueError):
            continue
        if 0.0 < rate < 1.0:
            return rate, source
    return None, ""


@dataclass(frozen=True)
class ResolvedThreshold:
    """A rule and the risk threshold it stands for now (None: nobody scored yet)."""

    rule: HighRiskRule
    threshold: float | None
    base_rate: float | None = None
    base_rate_source: str = ""
    users: int | None = None  # top_percent: the active users it was taken over
    problem: str = ""  # why it could not be resolved (threshold is then None)

    @property
    def cut(self) -> float:
        """The threshold for a query: nobody is marked while it is unresolved."""
        return math.inf if self.threshold is None else self.threshold

    def marks(self, risk: np.ndarray) -> np.ndarray:
        """True where ``risk`` is high under this threshold."""
        return np.asarray(risk, dtype=np.float64) >= self.cut

    def text(self) -> str:
        """One line for a report or a dashboard caption."""
        rule = self.rule
        if self.threshold is None:
            why = self.problem or "no active user scored yet"
            return f"high risk = {rule.describe()} ({rule.text}): not resolved - {why}"
        how = rule.describe()
        if rule.kind == "multiple_of_base_rate":
            src = self.base_rate_source or "base rate"
            how = f"{rule.value:g}x the champion's {src} {self.base_rate:.2%}"
        elif rule.kind == "top_percent":
            how = f"the top {rule.value:g}% of {self.users:,} active users"
        return f"high risk = risk >= {self.threshold:.4g} ({how}; rule {rule.text})"

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.text, "threshold": self.threshold, "base_rate": self.base_rate,
                "base_rate_source": self.base_rate_source, "users": self.users, "problem": self.problem}  # fmt: skip


def resolve_in_store(
    rule: HighRiskRule, store: Any, base_rate: float | None = None, base_rate_source: str = "",
    version: str | None = None,
) -> ResolvedThreshold:
    """Resolve ``rule`` on the store's current scores (what the report and dashboard show).

    Never raises for a missing base rate: the result then carries the reason (``problem``)
    and marks nobody, so a page or a closing report still renders and says why.
    """
    if rule.kind == "top_percent":
        users = int(store.score_summary(high_risk=math.inf).users)
        if users == 0:
            return ResolvedThreshold(rule, None, users=0)
        risk = store.risk_at_rank(top_rank(rule.value, users))
        return ResolvedThreshold(rule, None if risk is None else float(risk), users=users)
    try:
        return rule.resolve(base_rate=base_rate, base_rate_source=base_rate_source, version=version)
    except (ConfigError, ModelMismatchError) as exc:
        return ResolvedThreshold(rule, None, problem=str(exc))
