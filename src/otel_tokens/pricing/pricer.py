"""The pricer: a pure function from (provider, model, `Usage`) to USD, or None when unpriced.

Prices come from the ``genai-prices`` data bundled with that package (offline: nothing is
ever downloaded) and from the user's price file (``OTEL_TOKENS_PRICES``, see
`otel_tokens.pricing.price_file`), which wins over the bundled data.

``genai_prices.calc_price`` costs ~100 µs, more than a whole span, so it never runs per
call. The first call for a (provider, model) pair resolves the model once and compiles a
*rate card*: USD per token for uncached input, cache read, cache write, output and
reasoning, plus a per-request fee, one set per price tier. Every later call is a dict
lookup and a handful of Decimal operations. The results equal ``calc_price`` exactly:

* genai-prices semantics: ``input_tokens`` is the total *including* cache reads and
  writes; each priced token type is charged at its own rate and the rest at the input
  rate (a model without a cache-read price charges cache reads as input); reasoning is
  part of output unless the model prices ``output_reasoning`` separately.
* Tiered prices (e.g. long-context rates): the tier is chosen by total input tokens
  (``> tier.start``) and applies to *all* tokens of the call.
* Time-dependent prices (``ConditionalPrice``) are resolved at the current time; a card
  expires at the next price change, and after an hour in any case.
* Lookup: our ``gen_ai.provider.name`` maps to a genai-prices provider id (``aws.bedrock``
  -> ``aws``, ``gcp.gemini`` -> ``google``, ...); the model matches case-insensitively with
  genai-prices' own rules (dated snapshots included). A provider genai-prices does not know
  is found by model name; a ``prefix/model`` ref that does not match is retried as
  ``model``. Unknown models are cached as unpriced too.
* Each compiled card is checked once against genai-prices on probe usages; a model whose
  price keys the card cannot express falls back to ``ModelPrice.calc_price`` per call.

`Pricer.price` never raises: unknown models give None, bad usage is clamped, and an
internal error is logged once and gives None.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from otel_tokens import names
from otel_tokens.pricing.providers import ProviderResolver, price_provider_id
from otel_tokens.record import Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelPrice

    from otel_tokens.pricing.price_file import Override

# genai_prices (pydantic, ~0.25 s of data) and yaml load on first use, never at import:
# this module is imported by the start-up hook path.

__all__ = ["Override", "Price", "Pricer", "default_pricer", "load_price_file", "reset_default_pricer"]

_log = logging.getLogger("otel_tokens")

_ZERO: Final = Decimal(0)
_REFRESH_S: Final = 3600.0
_MAX_MODELS: Final = 1024


@dataclass(frozen=True, slots=True)
class Price:
    """The cost of one call in USD."""

    total: Decimal
    # What the cache-read tokens would have cost at the input rate minus what they cost.
    cache_savings: Decimal


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token (per request for `per_call`) within one price tier."""

    uncached: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal  # output tokens that are not separately priced reasoning
    reasoning: Decimal
    per_call: Decimal
    saving: Decimal  # uncached - cache_read

    @classmethod
    def per_mtok(
        cls,
        uncached: Decimal,
        cache_read: Decimal,
        cache_write: Decimal,
        output: Decimal,
        reasoning: Decimal,
        per_call: Decimal = _ZERO,
    ) -> _Rates:
        """From USD per million tokens (scaleb is exact, unlike a division)."""
        u, cr = uncached.scaleb(-6), cache_read.scaleb(-6)
        return cls(u, cr, cache_write.scaleb(-6), output.scaleb(-6), reasoning.scaleb(-6), per_call, u - cr)


class _Card:
    """A compiled price for one model: flat, tiered, or (rarely) genai-prices per call."""

    __slots__ = ("expires", "fallback", "flat", "starts", "tiers")

    def __init__(
        self,
        starts: tuple[int, ...],
        tiers: tuple[_Rates, ...],
        expires: float,
        fallback: ModelPrice | None = None,
    ) -> None:
        self.starts = starts  # tier i+1 applies when input_tokens > starts[i]
        self.tiers = tiers
        self.flat = tiers[0] if len(tiers) == 1 else None
        self.expires = expires
        self.fallback = fallback  # a genai_prices ModelPrice when the rates cannot express it

    def price(self, usage: Usage) -> Price | None:
        inp, out = usage.input_tokens, usage.output_tokens
        cr, cw, rs = usage.cache_read_tokens, usage.cache_write_tokens, usage.reasoning_tokens
        if cr < 0 or cw < 0 or rs < 0 or inp < cr + cw or out < rs:
            cr, cw, rs = max(cr, 0), max(cw, 0), max(rs, 0)
            inp, out = max(inp, cr + cw), max(out, rs)
        if self.fallback is not None:
            return _fallback_price(self.fallback, inp, out, cr, cw, rs)
        r = self.flat or self.tiers[bisect_left(self.starts, inp)]
        total = r.per_call
        uncached = inp - cr - cw
        if uncached:
            total += r.uncached * uncached
        if cr:
            total += r.cache_read * cr
        if cw:
            total += r.cache_write * cw
        if out - rs:
            total += r.output * (out - rs)
        if rs:
            total += r.reasoning * rs
        return Price(total, r.saving * cr if cr else _ZERO)


_UNPRICED: Final = _Card((), (), float("inf"))  # cached misses: unknown models stay cheap


class Pricer:
    """Prices calls from bundled genai-prices data and an optional user price file."""

    def __init__(
        self,
        overrides_path: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_models: int = _MAX_MODELS,
        providers: dict[str, str] | None = None,
    ) -> None:
        overrides: list[Override] = []
        if overrides_path:
            from otel_tokens.pricing.price_file import load_price_file

            overrides, errors = load_price_file(overrides_path)
            for error in errors:  # once, here; never per call
                _log.warning("otel-tokens price file: %s; the rest of the prices keep working", error)
        # Precedence: exact name before glob, then a provider-specific entry before an
        # any-provider one, then file order.
        self._overrides = sorted(overrides, key=lambda o: (o.is_glob, o.provider is None))
        self._cards: dict[tuple[str, str], _Card] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._max_models = max(max_models, 1)
        # who bills a call, from the base URL (`providers:` of the price file, then the env)
        self.providers = ProviderResolver(providers)

    @classmethod
    def from_env(cls) -> Pricer:
        """Bundled prices plus the file named by ``OTEL_TOKENS_PRICES``, if set."""
        return cls(os.environ.get(names.ENV_PRICES) or None)

    @staticmethod
    def preload() -> None:
        """Load the bundled price data now (~0.25 s) rather than on the first priced call."""
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()

    def price(self, provider: str, model: str | None, usage: Usage) -> Price | None:
        """USD for one call; None when the model has no known price. Never raises."""
        try:
            if not model:
                return None
            key = (provider, model)
            card = self._cards.get(key)
            if card is None or card.expires <= self._clock():
                card = self._resolve(key)
            if card is _UNPRICED:
                return None
            return card.price(usage)
        except Exception:
            _log_once("price", "otel-tokens: pricing failed; the call is recorded without a cost", exc=True)
            return None

    def _resolve(self, key: tuple[str, str]) -> _Card:
        with self._lock:
            now = self._clock()
            card = self._compile(key[0], key[1], now) or _UNPRICED
            cards = self._cards
            if key not in cards and len(cards) >= self._max_models:
                del cards[next(iter(cards))]  # oldest first; bounded whatever the model names
            cards[key] = card
            return card

    def _compile(self, provider: str, model: str, now: float) -> _Card | None:
        provider_names = _provider_names(provider)
        model_l = model.lower()
        for o in self._overrides:
            if o.matches(provider_names, model_l):
                rates = _Rates.per_mtok(
                    o.input_per_mtok,
                    o.cache_read_per_mtok,
                    o.cache_write_per_mtok,
                    o.output_per_mtok,
                    o.output_per_mtok,
                )
                return _Card((), (rates,), float("inf"))
        try:
            return _compile_bundled(provider_names[-1], model, now)
        except Exception as e:  # a data or library problem: leave this model unpriced
            _log_once(f"compile:{provider}:{model}", f"otel-tokens: cannot price {provider} {model!r}: {e!r}")
            return None


def _provider_names(provider: str) -> tuple[str, ...]:
    """The names an override's `provider:` may use: ours, then the genai-prices id (last)."""
    p = (provider or "").lower()
    return (p, price_provider_id(p))


def _compile_bundled(provider_id: str, model: str, now: float) -> _Card | None:
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()  # bundled data unless the app set its own
    pid: str | None = provider_id or None
    if pid is not None:
        try:
            snapshot.find_provider(None, pid, None)
        except LookupError:
            pid = None  # a provider genai-prices does not know: find it by model name
    try:
        _, info = snapshot.find_provider_model(model, None, pid, None)
    except LookupError:
        if "/" not in model.strip("/"):
            return None
        # "models/gemini-2.5-flash" (Gemini API), "openai/gpt-4o" (gateways): try the last part.
        try:
            _, info = snapshot.find_provider_model(model.rstrip("/").rsplit("/", 1)[1], None, pid, None)
        except LookupError:
            return None
    when = datetime.fromtimestamp(now, UTC)
    return _card_from_model_price(info.get_prices(when), _expiry(info.prices, now))


def _card_from_model_price(mp: ModelPrice, expires: float) -> _Card | None:
    from genai_prices.types import TieredPrices

    values = {k: v for k, v in vars(mp).items() if not k.startswith("_") and v is not None}
    starts = tuple(sorted({t.start for v in values.values() if isinstance(v, TieredPrices) for t in v.tiers}))

    def at(key: str, total_input: int) -> Decimal | None:
        v = values.get(key)
        if isinstance(v, TieredPrices):  # the same walk as genai_prices.types.calc_unit_price
            for tier in reversed(v.tiers):
                if total_input > tier.start:
                    return Decimal(tier.price)
            return Decimal(v.base)
        return None if v is None else Decimal(v)

    tiers: list[_Rates] = []
    for i in range(len(starts) + 1):
        total_input = starts[i - 1] + 1 if i else 0
        uncached = at("input_mtok", total_input) or _ZERO
        output = at("output_mtok", total_input) or _ZERO
        requests = at("requests_kcount", total_input)
        cache_read = at("cache_read_mtok", total_input)
        cache_write = at("cache_write_mtok", total_input)
        reasoning = at("output_reasoning_mtok", total_input)
        tiers.append(
            _Rates.per_mtok(
                uncached,
                uncached if cache_read is None else cache_read,
                uncached if cache_write is None else cache_write,
                output,
                output if reasoning is None else reasoning,
                _ZERO if requests is None else requests.scaleb(-3),
            )
        )
    card = _Card(starts, tuple(tiers), expires)
    return _verified(card, mp, starts)


def _calc(mp: ModelPrice, inp: int, out: int, cr: int, cw: int, rs: int) -> Decimal:
    """genai-prices' own price for our usage (its `input_tokens` includes the cache too)."""
    from genai_prices import Usage as GenaiUsage

    usage = GenaiUsage(
        input_tokens=inp,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        output_tokens=out,
        output_reasoning_tokens=rs,
    )
    return mp.calc_price(usage)["total_price"]


def _verified(card: _Card, mp: ModelPrice, starts: tuple[int, ...]) -> _Card | None:
    """Check the card against genai-prices once per tier; on any mismatch price via `mp`.

    Price keys the card ignores (audio, image, web searches, 1h cache writes, ...) can only
    apply to usage we never report, so they cost nothing; the probes confirm it.
    """
    try:
        _calc(mp, 0, 0, 0, 0, 0)
    except Exception:
        return None  # genai-prices cannot price this model at all
    fallback = _Card((), (), card.expires, mp)
    try:
        for i in range(len(starts) + 1):
            hi = starts[i] if i < len(starts) else None
            inp = starts[i - 1] + 1 if i else min(1_000_003, hi if hi is not None else 1_000_003)
            for cr, cw, out, rs in ((0, 0, 0, 0), (inp // 5, inp // 7, 7_919, 1_009)):
                got = card.price(Usage(inp, out, cr, cw, rs))
                if got is None or got.total != _calc(mp, inp, out, cr, cw, rs):
                    return fallback
    except Exception:
        return fallback
    return card


def _fallback_price(mp: ModelPrice, inp: int, out: int, cr: int, cw: int, rs: int) -> Price | None:
    try:
        total = _calc(mp, inp, out, cr, cw, rs)
        if not cr:
            return Price(total, _ZERO)
        return Price(total, _calc(mp, inp, out, 0, cw, rs) - total)
    except Exception:
        return None  # genai-prices rejects this usage for this model


def _expiry(prices: object, now: float) -> float:
    """When a compiled card must be rebuilt: the next time-based price change, or in an hour."""
    from genai_prices.types import ConditionalPrice, StartDateConstraint, TimeOfDateConstraint

    deadline = now + _REFRESH_S
    if not isinstance(prices, list):
        return deadline
    today = datetime.fromtimestamp(now, UTC).date()
    for cp in prices:
        c = cp.constraint if isinstance(cp, ConditionalPrice) else None
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


_logged: set[str] = set()


def _log_once(key: str, message: str, *, exc: bool = False) -> None:
    if key not in _logged and len(_logged) < 1000:
        _logged.add(key)
        _log.warning(message, exc_info=exc)


def load_price_file(path: str | os.PathLike[str]) -> tuple[list[Override], list[str]]:
    """Validate a price file: (valid overrides, one `path:line: problem (fix: ...)` per error)."""
    from otel_tokens.pricing import price_file

    return price_file.load_price_file(path)


def __getattr__(name: str) -> object:
    if name == "Override":  # re-exported lazily, like the rest of the price-file code
        from otel_tokens.pricing.price_file import Override

        return Override
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_default: Pricer | None = None
_default_lock = threading.Lock()


def default_pricer() -> Pricer:
    """The process-wide pricer, built from the environment on first use."""
    global _default
    pricer = _default
    if pricer is None:
        with _default_lock:
            if _default is None:
                _default = Pricer.from_env()
            pricer = _default
    return pricer


def reset_default_pricer() -> None:
    """Forget the process-wide pricer (tests; or after changing OTEL_TOKENS_PRICES)."""
    global _default
    with _default_lock:
        _default = None
