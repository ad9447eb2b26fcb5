"""Rate cards: a genai-prices ``ModelPrice`` compiled once into a linear function of `Usage`.

genai-prices prices a call as, per priced unit, ``rate x leaf count / per``, where a unit's
*leaf* count is its reported count minus the leaves of every more specific priced unit (input
minus cache reads minus cache writes; cache writes minus one-hour writes; ...), with the rate
of the tier the call's total input falls in, plus a per-request fee. For one tier that is a
linear map from the reported counts to USD, so a card stores, per tier, the USD per unit of
each `Usage` field (its *coefficient*: e.g. cache reads get ``cache_read_rate - input_rate``)
and the per-request fee. Pricing a call is then a bisect for the tier and a few Decimal
multiply-adds: no genai-prices code runs per call.

Each card is checked once, on probe usages in every tier, against ``ModelPrice.calc_price``;
a card that disagrees is never used (the model stays unpriced and a warning says why).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from otel_tokens.record import GENAI_KEYS, Usage, normalised_usage

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice

__all__ = ["FIELDS", "Card", "Price", "compile_card", "expiry", "genai_usage"]

_log = logging.getLogger("otel_tokens")
_ZERO: Final = Decimal(0)
_REFRESH_S: Final = 3600.0
_TOLERANCE: Final = Decimal("1e-15")  # USD; only non-decimal units (per hour) ever round

# `Usage` field -> genai-prices usage key, input and output first
FIELDS: Final = tuple((field_name, key) for key, field_name in GENAI_KEYS.items())


_FIELD_NAMES: Final = frozenset(name for name, _ in FIELDS)


@dataclass(frozen=True, slots=True)
class Price:
    """The cost of one call in USD."""

    total: Decimal
    # What the cache-read tokens would have cost at the input rate minus what they cost.
    cache_savings: Decimal


@dataclass(frozen=True, slots=True)
class Rates:
    """One tier: USD per request, USD per unit of each non-zero `Usage` field."""

    per_call: Decimal
    terms: tuple[tuple[str, Decimal], ...]  # (Usage attribute, USD per unit)
    details: dict[str, Decimal]  # genai-prices usage key -> USD per unit, for `Usage.details`
    saving: Decimal  # per cache-read token: what it saves against uncached input
    total: Callable[[Usage], Decimal] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", _linear_function(self.per_call, self.terms))


def _linear_function(per_call: Decimal, terms: tuple[tuple[str, Decimal], ...]) -> Callable[[Usage], Decimal]:
    """``per_call + sum(rate * usage.<field>)`` as straight-line code: no loop per call.

    Field names come from `FIELDS` only (never from data), rates are bound as constants.
    """
    lines = ["def total(u):", "    t = PER_CALL"]
    namespace: dict[str, Any] = {"PER_CALL": per_call}
    for i, (name, rate) in enumerate(terms):
        if name not in _FIELD_NAMES:
            raise ValueError(f"not a Usage field: {name!r}")
        namespace[f"R{i}"] = rate
        lines += [f"    v = u.{name}", "    if v:", f"        t += R{i} * v"]
    lines.append("    return t")
    exec("\n".join(lines), namespace)  # generated from FIELDS names and bound constants only
    fn: Callable[[Usage], Decimal] = namespace["total"]
    return fn


class Card:
    """A compiled price for one (provider, model, price context)."""

    __slots__ = ("expires", "flat", "starts", "tiers")

    def __init__(self, starts: tuple[int, ...], tiers: tuple[Rates, ...], expires: float) -> None:
        self.starts = starts  # tier i+1 applies when input_tokens > starts[i]
        self.tiers = tiers
        self.flat = tiers[0] if len(tiers) == 1 else None
        self.expires = expires

    def price(self, usage: Usage) -> Price:
        u = usage
        cr, cw, rs = u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens
        if (
            (cr | cw | rs) < 0
            or cr + cw > u.input_tokens
            or rs > u.output_tokens
            or u.cache_write_1h_tokens > cw
        ):
            u = _clamped(u)
            cr = u.cache_read_tokens
        r = self.flat or self.tiers[bisect_left(self.starts, u.input_tokens)]
        total = r.total(u)
        if u.details and r.details:
            for key, v in u.details:
                detail = r.details.get(key)
                if detail is not None:
                    total += detail * v
        return Price(total, r.saving * cr if cr and r.saving else _ZERO)


def _clamped(u: Usage) -> Usage:
    return normalised_usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        reasoning_tokens=u.reasoning_tokens,
        cache_write_1h_tokens=u.cache_write_1h_tokens,
        input_audio_tokens=u.input_audio_tokens,
        output_audio_tokens=u.output_audio_tokens,
        input_image_tokens=u.input_image_tokens,
        output_image_tokens=u.output_image_tokens,
        web_searches=u.web_searches,
        details=dict(u.details),
    )


def genai_usage(u: Usage) -> Any:
    """The same usage as a ``genai_prices.Usage`` (its input includes the cache too)."""
    from genai_prices import Usage as GenaiUsage

    values: dict[str, int] = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}
    for name, key in FIELDS[2:]:
        v = getattr(u, name)
        if v:
            values[key] = v
    values.update(u.details)
    return GenaiUsage(**values)


def _at(price: Any, total_input: int) -> Decimal:
    """A unit's rate at a total input: the same walk as ``genai_prices.types.calc_unit_price``."""
    from genai_prices.types import TieredPrices

    if isinstance(price, TieredPrices):
        for tier in reversed(price.tiers):
            if total_input > tier.start:
                return Decimal(tier.price)
        return Decimal(price.base)
    return Decimal(price)


def _per(rate: Decimal, per: int) -> Decimal:
    exp = len(str(per)) - 1
    return rate.scaleb(-exp) if per == 10**exp else rate / per  # scaleb is exact


def _rates(resolved: tuple[tuple[Any, Any], ...], total_input: int) -> Rates:
    from genai_prices.decompose import is_descendant_or_self

    per_call = _ZERO
    units = []
    for unit, price in resolved:
        if unit.usage_key == "requests":
            per_call += _per(_at(price, total_input), unit.per)
        else:
            units.append((unit, _per(_at(price, total_input), unit.per)))
    # the order and subtraction of genai_prices.decompose.compute_leaf_values, symbolically
    units.sort(key=lambda ur: (-len(ur[0].dimensions), ur[0].usage_key))
    leaves: dict[str, dict[str, int]] = {}
    coef: dict[str, Decimal] = {}
    for unit, rate in units:
        leaf = {unit.usage_key: 1}
        for other, _ in units:
            if other is not unit and is_descendant_or_self(unit, other):
                for key, c in leaves[other.usage_key].items():
                    leaf[key] = leaf.get(key, 0) - c
        leaves[unit.usage_key] = leaf
        for key, c in leaf.items():
            if c:
                coef[key] = coef.get(key, _ZERO) + rate * c
    terms = tuple((name, coef.pop(key)) for name, key in FIELDS if coef.get(key))
    saving = -dict(terms).get("cache_read_tokens", _ZERO)
    details = {k: v for k, v in coef.items() if v}
    return Rates(per_call, terms, details, saving if saving > 0 else _ZERO)


def _probes(inp: int) -> list[Usage]:
    cw = inp // 7
    base = dict(input_tokens=inp, output_tokens=7_919, cache_read_tokens=inp // 5, cache_write_tokens=cw)
    extras: list[dict[str, int]] = [
        {"reasoning_tokens": 1_009},
        {"cache_write_1h_tokens": cw // 3},
        {"input_audio_tokens": inp // 11},
        {"output_audio_tokens": 1_131},
        {"input_image_tokens": inp // 13},
        {"output_image_tokens": 877},
        {"web_searches": 3},
    ]
    probes = [Usage(), Usage(**base)]  # type: ignore[arg-type]
    probes += [Usage(**base, **e) for e in extras]  # type: ignore[arg-type]
    probes.append(Usage(input_tokens=inp, output_tokens=7_919))
    return probes


def compile_card(mp: ModelPrice, expires: float, what: str) -> Card | None:
    """The card for `mp`, verified against genai-prices; None when it cannot be priced."""
    from genai_prices.types import TieredPrices, _collect_resolved_model_prices
    from genai_prices.units import _get_registry

    resolved = _collect_resolved_model_prices(mp, _get_registry())
    starts = tuple(sorted({t.start for _, p in resolved if isinstance(p, TieredPrices) for t in p.tiers}))
    tiers = tuple(_rates(resolved, starts[i - 1] + 1 if i else 0) for i in range(len(starts) + 1))
    card = Card(starts, tiers, expires)
    for i in range(len(starts) + 1):
        inp = starts[i - 1] + 1 if i else min(1_000_003, starts[0] if starts else 1_000_003)
        for j, probe in enumerate(_probes(inp)):
            try:
                want = mp.calc_price(genai_usage(probe))["total_price"]
            except Exception:
                if j <= 1:
                    return None  # genai-prices cannot price this model's basic usage at all
                continue  # a dimension genai-prices itself rejects for this model
            got = card.price(probe).total
            if abs(got - want) > _TOLERANCE:
                _log.warning(
                    "otel-tokens: cannot compile the price of %s (%s != genai-prices %s on %s); "
                    "it stays unpriced",
                    what,
                    got,
                    want,
                    probe,
                )
                return None
    return card


def expiry(info: ModelInfo, now: float) -> float:
    """When a card must be rebuilt: the next time-based price change, or in an hour."""
    from genai_prices.types import ConditionalPrice, StartDateConstraint, TimeOfDateConstraint

    deadline = now + _REFRESH_S
    constraints: list[object] = []
    if isinstance(info.prices, list):
        constraints += [cp.constraint for cp in info.prices if isinstance(cp, ConditionalPrice)]
    constraints += [v.constraint for v in info.price_variants or ()]
    today = datetime.fromtimestamp(now, UTC).date()
    for c in constraints:
        if isinstance(c, StartDateConstraint):
            t = datetime.combine(c.start_date, dtime(), UTC).timestamp()
            if t > now:
                deadline = min(deadline, t)
        elif isinstance(c, TimeOfDateConstraint):
            for tod in (c.start_time, c.end_time):
                at = datetime.combine(today, _utc_time(tod))
                if at.timestamp() <= now:
                    at += timedelta(days=1)
                deadline = min(deadline, at.timestamp())
    return deadline


def _utc_time(value: dtime) -> dtime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return datetime.combine(date(1970, 1, 1), value).astimezone(UTC).timetz()
