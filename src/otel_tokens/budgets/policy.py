"""The budget policy, pure: which budgets a call falls under, periods, thresholds, estimates.

Nothing here does I/O or keeps state; `policy_file` builds a `Policy` from the file, the
gate asks it questions. Money is exact: `Decimal` USD in the data model, integer nano-USD
(`to_nano`, rounded up) in the ledger.

The estimate of a call (`estimate`) is an upper bound on what the provider bills, under
stated assumptions:

* input tokens <= the UTF-8 bytes of the request's JSON (every field but the model name
  and the transport options): byte-level BPE tokenizers (OpenAI's, Anthropic's) never
  produce more tokens than bytes, and the JSON punctuation around each message outweighs
  the few formatting tokens per message. Not covered: images or files passed by URL or id
  (their tokens are not in the request) and a provider's hidden tool prompt beyond the
  ~4x margin that bytes already leave on text.
* output tokens = ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` (also in
  google-genai's ``config``) when the request sets one, 0 for embeddings, else the model's
  default from `OUTPUT_DEFAULTS` (the file's ``output_defaults`` win).
* priced with the same pricer as the call's real cost (and the request's service tier), at
  the dearest of: all input uncached, all input as 5-minute or as 1-hour cache writes, all
  output as reasoning. Not covered: audio or image output and server-side tools (web
  search), which the request does not bound. A model the pricer does
  not know is estimated at $0 (and its calls add $0): `Estimate.priced` says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, Final

from otel_tokens import names as n
from otel_tokens.record import Usage

PERIODS: Final = ("day", "week", "month", "task")
ACTIONS: Final = ("warn", "block")
LEDGER_ERROR_ACTIONS: Final = ("allow", "block")
DEFAULT_WARN_AT: Final = (Decimal("0.75"), Decimal("0.9"), Decimal("1.0"))
MAX_THRESHOLDS: Final = 16

# match keys -> the span attribute of the call's attribution that carries the value
SUBJECT_KEYS: Final = {
    "user": n.USER_ID,
    "team": n.TEAM,
    "task": n.TASK_NAME,
    "task_size": n.TASK_SIZE,
    "pipeline": n.CICD_PIPELINE_NAME,
    "model": n.GEN_AI_REQUEST_MODEL,
    "provider": n.GEN_AI_PROVIDER_NAME,
    "service": "service.name",
}
MATCH_KEYS: Final = tuple(SUBJECT_KEYS)

# Output tokens assumed when a request sets no limit: the model's documented maximum output.
# First matching glob wins; the file's `output_defaults` are tried before these.
OUTPUT_DEFAULTS: Final[tuple[tuple[str, int], ...]] = (
    ("o1-mini*", 65_536),
    ("o1*", 100_000),
    ("o3*", 100_000),
    ("o4*", 100_000),
    ("gpt-5*", 128_000),
    ("gpt-4.1*", 32_768),
    ("gpt-4o*", 16_384),
    ("chatgpt-4o*", 16_384),
    ("gpt-4-turbo*", 4_096),
    ("gpt-4*", 8_192),
    ("gpt-3.5*", 4_096),
    ("claude-*", 64_000),
    ("*", 32_768),
)
# request fields that are transport options, not text the model reads
_NOT_INPUT: Final = frozenset(
    {"model", "stream", "extra_headers", "extra_query", "timeout", "idempotency_key", "betas"}
)
_OUTPUT_LIMITS: Final = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_NANO: Final = Decimal("1e9")


def to_nano(usd: Decimal) -> int:
    """USD -> integer nano-USD, rounded up (a budget never rounds in the spender's favour)."""
    return math.ceil(usd * _NANO)


def from_nano(nano: int) -> Decimal:
    return Decimal(nano) / _NANO


@dataclass(frozen=True)
class Match:
    """Match keys -> globs (any of a list). Empty: everything."""

    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def matches(self, subject: Mapping[str, str]) -> bool:
        for key, globs in self.fields:
            value = subject.get(key)
            if value is None or not any(fnmatchcase(value, g) for g in globs):
                return False
        return True


@dataclass(frozen=True)
class Budget:
    name: str
    limit_usd: Decimal
    period: str = "day"
    match: Match = field(default_factory=Match)
    warn_at: tuple[Decimal, ...] = DEFAULT_WARN_AT
    action: str = "warn"
    on_ledger_error: str = "allow"
    per: tuple[str, ...] = ()  # match keys whose each value gets its own allowance
    line: int = 0

    @property
    def blocks(self) -> bool:
        return self.action == "block"

    @cached_property
    def limit_nano(self) -> int:
        return to_nano(self.limit_usd)

    @cached_property
    def _thresholds(self) -> tuple[int, ...]:
        return tuple(to_nano(self.limit_usd * t) for t in self.warn_at)

    def threshold_nanos(self) -> tuple[int, ...]:
        return self._thresholds

    def team(self) -> str | None:
        """The one team this budget is for, when its match is exactly ``{team: NAME}``."""
        if len(self.match.fields) == 1 and self.match.fields[0][0] == "team":
            globs = self.match.fields[0][1]
            if len(globs) == 1 and not any(c in globs[0] for c in "*?["):
                return globs[0]
        return None


@dataclass(frozen=True)
class ModelRule:
    match: Match
    deny: tuple[str, ...]
    action: str = "warn"
    line: int = 0

    def denies(self, subject: Mapping[str, str]) -> bool:
        model = subject.get("model")
        return (
            model is not None
            and any(fnmatchcase(model, g) for g in self.deny)
            and self.match.matches(subject)
        )


@dataclass(frozen=True)
class Policy:
    budgets: tuple[Budget, ...] = ()
    models: tuple[ModelRule, ...] = ()
    timezone: str = "UTC"
    output_defaults: tuple[tuple[str, int], ...] = ()
    source: str = ""

    def tz(self) -> tzinfo:
        return zone(self.timezone)


def zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


# --- which budgets a call falls under ------------------------------------------------------
def subject_of(
    attrs: Mapping[str, Any], provider: str, model: str | None, service: str | None
) -> dict[str, str]:
    """The match keys' values of one call, from its attribution attributes."""
    out: dict[str, str] = {}
    for key, attr in SUBJECT_KEYS.items():
        value = attrs.get(attr)
        if value is not None:
            out[key] = str(value)
    out["provider"] = provider
    if model:
        out["model"] = model
    if service:
        out["service"] = service
    task_id = attrs.get(n.TASK_ID)
    if task_id is not None:
        out["task_id"] = str(task_id)
    return out


@dataclass(frozen=True)
class Applicable:
    """One budget that applies to a call, with its scope and period resolved."""

    budget: Budget
    scope: str  # "all", "team=platform", "user=alice", "task_id=..."
    period: str  # the period's key in the ledger: d2026-12-03, w2026-W49, m2026-12, t<task id>
    start: datetime | None
    end: datetime | None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.budget.name, self.scope, self.period)


def scope_of(budget: Budget, subject: Mapping[str, str]) -> str | None:
    """The scope value a call spends from, or None when the budget does not apply."""
    if not budget.match.matches(subject):
        return None
    parts = [f"{key}={subject[key]}" for key in budget.per if key in subject]
    if len(parts) < len(budget.per):
        return None
    if budget.period == "task":
        task_id = subject.get("task_id")
        if task_id is None:
            return None  # a per-task budget applies only inside a task run
        parts.append(f"task_id={task_id}")
    if not parts:
        fixed = [f"{k}={g[0]}" for k, g in budget.match.fields if len(g) == 1]
        return ",".join(fixed) if fixed else "all"
    return ",".join(parts)


def applicable(policy: Policy, subject: Mapping[str, str], now: datetime) -> list[Applicable]:
    out: list[Applicable] = []
    for budget in policy.budgets:
        scope = scope_of(budget, subject)
        if scope is None:
            continue
        if budget.period == "task":
            out.append(Applicable(budget, scope, "t" + subject["task_id"], None, None))
        else:
            key, start, end = _current_period(budget.period, now, policy.timezone)
            out.append(Applicable(budget, scope, key, start, end))
    return out


# (period, zone) -> (key, start, end) of the period computed last: every call of a day asks
_periods: dict[tuple[str, str], tuple[str, datetime, datetime]] = {}


def _current_period(period: str, now: datetime, timezone: str) -> tuple[str, datetime, datetime]:
    cached = _periods.get((period, timezone))
    if cached is not None and cached[1] <= now < cached[2]:
        return cached
    bounds = _periods[(period, timezone)] = period_bounds(period, now, zone(timezone))
    return bounds


def denied_by(policy: Policy, subject: Mapping[str, str]) -> ModelRule | None:
    for rule in policy.models:
        if rule.denies(subject):
            return rule
    return None


# --- periods -----------------------------------------------------------------------------
def period_bounds(period: str, now: datetime, tz: tzinfo) -> tuple[str, datetime, datetime]:
    """(ledger key, start, end) of the calendar period holding `now`, in zone `tz`.

    Weeks start on Monday (ISO 8601). Start and end are aware datetimes in `tz`.
    """
    local = now.astimezone(tz)
    day = datetime(local.year, local.month, local.day, tzinfo=tz)
    if period == "day":
        return f"d{day:%Y-%m-%d}", day, _midnight_after(day, 1, tz)
    if period == "week":
        start = _midnight_after(day, -day.weekday(), tz)
        iso = start.isocalendar()
        return f"w{iso.year}-W{iso.week:02d}", start, _midnight_after(start, 7, tz)
    if period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        return f"m{start:%Y-%m}", start, datetime(year, month, 1, tzinfo=tz)
    raise ValueError(f"not a calendar period: {period!r}")


def _midnight_after(day: datetime, days: int, tz: tzinfo) -> datetime:
    d = (day.replace(tzinfo=None) + timedelta(days=days)).date()
    return datetime(d.year, d.month, d.day, tzinfo=tz)


# --- thresholds --------------------------------------------------------------------------
def crossings(threshold_nanos: tuple[int, ...], spent_nano: int, reported_mask: int) -> int:
    """Bits of the thresholds reached by `spent_nano` and not yet reported (bit i = warn_at[i])."""
    mask = 0
    for i, at in enumerate(threshold_nanos):
        if spent_nano >= at and not reported_mask & (1 << i):
            mask |= 1 << i
    return mask


def bits(mask: int) -> list[int]:
    return [i for i in range(MAX_THRESHOLDS) if mask & (1 << i)]


# --- the estimate --------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    output_tokens: int
    usd: Decimal
    priced: bool

    @property
    def nano(self) -> int:
        return to_nano(self.usd)


PriceFn = Callable[[Usage], Decimal | None]


def output_tokens(kwargs: Mapping[str, Any], operation: str, model: str | None, policy: Policy) -> int:
    if operation == n.OP_EMBEDDINGS:
        return 0
    config = kwargs.get("config")  # google-genai: GenerateContentConfig or its dict form
    for key in _OUTPUT_LIMITS:
        for value in (kwargs.get(key), _field(config, key)):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    name = model or ""
    for glob, tokens in (*policy.output_defaults, *OUTPUT_DEFAULTS):
        if fnmatchcase(name, glob):
            return tokens
    return OUTPUT_DEFAULTS[-1][1]


def _field(obj: object, key: str) -> object:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None) if obj is not None else None


def input_tokens(kwargs: Mapping[str, Any]) -> int:
    body = {k: v for k, v in kwargs.items() if k not in _NOT_INPUT}
    return len(json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"))


def estimate(
    kwargs: Mapping[str, Any], operation: str, model: str | None, policy: Policy, price: PriceFn
) -> Estimate:
    """The upper bound of one call's cost (see the module docstring for the bound)."""
    inp = input_tokens(kwargs)
    out = output_tokens(kwargs, operation, model, policy)
    candidates = [
        price(Usage(inp, out)),
        price(Usage(inp, out, cache_write_tokens=inp)),
        price(Usage(inp, out, cache_write_tokens=inp, cache_write_1h_tokens=inp)),
        price(Usage(inp, out, reasoning_tokens=out)),
    ]
    known = [c for c in candidates if c is not None]
    if not known:
        return Estimate(inp, out, Decimal(0), False)
    return Estimate(inp, out, max(known), True)
