"""The pricer: a pure function from (provider, model, `Usage`, price context) to USD, or None.

Prices come from the ``genai-prices`` data bundled with that package (offline: nothing is
ever downloaded) and from the user's price file (``OTEL_TOKENS_PRICES``, see
`otel_tokens.pricing.price_file`), whose entries change only the rates they name.

What is priced: every unit genai-prices prices that `Usage` carries (see `otel_tokens.record`):
uncached input, cache reads, five-minute and one-hour cache writes, output, reasoning priced
apart from output, audio and image tokens, web searches, per-request fees, and any other
genai-prices usage key in ``Usage.details``; long-context tiers (the tier is chosen by total
input tokens, ``> tier.start``, and applies to *all* tokens of the call); price variants
selected by the call's ``service_tier`` (OpenAI / Gemini flex, priority, ...) and ``speed``
(Anthropic fast mode), with genai-prices' rule that a variant applies only to the provider's
own models (not to models priced through a fallback provider, e.g. Azure's OpenAI models).

``genai_prices.calc_price`` costs ~100 µs, more than a whole span, so it never runs per
call. The first call for a (provider, model, service tier, speed) resolves the model once and
compiles a rate card (`otel_tokens.pricing.cards`): USD per unit of each `Usage` field, per
price tier, checked once against genai-prices. Every later call is a dict lookup, a bisect and
a handful of Decimal multiply-adds (~2 µs). Time-dependent prices (``ConditionalPrice``, dated
variants) are resolved at the current time; a card expires at the next price change, and
after an hour in any case.

Lookup: ``gen_ai.provider.name`` maps to a genai-prices provider id
(`otel_tokens.pricing.providers`); the model matches case-insensitively with genai-prices' own
rules (dated snapshots included). A provider genai-prices does not know is found by model
name; a ``prefix/model`` ref that does not match is retried as ``model``. Unknown models are
cached as unpriced too.

`Pricer.price` never raises: unknown models give None, bad usage is clamped, and an
internal error is logged once and gives None.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from copy import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from otel_tokens import names
from otel_tokens.pricing.cards import Card, Price, compile_card, expiry
from otel_tokens.pricing.providers import ProviderResolver, price_provider_id
from otel_tokens.record import Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, Provider

    from otel_tokens.pricing.price_file import Override

# genai_prices (pydantic, ~0.25 s of data) and yaml load on first use, never at import:
# this module is imported by the start-up hook path.

__all__ = ["Override", "Price", "Pricer", "default_pricer", "load_price_file", "reset_default_pricer"]

_log = logging.getLogger("otel_tokens")

_MAX_MODELS: Final = 1024


_UNPRICED: Final = Card((), (), float("inf"))  # cached misses: unknown models stay cheap


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
        file_providers: dict[str, str] = {}
        if overrides_path:
            from otel_tokens.pricing.price_file import read_price_file

            parsed = read_price_file(overrides_path)
            overrides, file_providers = parsed.overrides, parsed.providers
            for error in parsed.errors:  # once, here; never per call
                _log.warning("otel-tokens price file: %s; the rest of the prices keep working", error)
        # Precedence: exact name before glob, then a provider-specific entry before an
        # any-provider one, then file order.
        self._overrides = sorted(overrides, key=lambda o: (o.is_glob, o.provider is None))
        self._cards: dict[_Key, Card] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._max_models = max(max_models, 1)
        # who bills a call, from the base URL (`providers:` of the price file, then the env)
        self.providers = ProviderResolver({**file_providers, **(providers or {})})

    @classmethod
    def from_env(cls) -> Pricer:
        """Bundled prices plus the file named by ``OTEL_TOKENS_PRICES``, if set."""
        return cls(os.environ.get(names.ENV_PRICES) or None)

    @staticmethod
    def preload() -> None:
        """Load the bundled price data now (~0.25 s) rather than on the first priced call."""
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()

    def price(
        self,
        provider: str,
        model: str | None,
        usage: Usage,
        service_tier: str | None = None,
        speed: str | None = None,
    ) -> Price | None:
        """USD for one call; None when the model has no known price. Never raises.

        `service_tier` and `speed` select genai-prices' price variants (e.g. ``flex``).
        """
        try:
            if not model:
                return None
            key = (provider, model, service_tier, speed)
            card = self._cards.get(key)
            if card is None or card.expires <= self._clock():
                card = self._resolve(key)
            if card is _UNPRICED:
                return None
            return card.price(usage)
        except Exception:
            _log_once("price", "otel-tokens: pricing failed; the call is recorded without a cost", exc=True)
            return None

    def _resolve(self, key: _Key) -> Card:
        with self._lock:
            now = self._clock()
            card = self._compile(key, now) or _UNPRICED
            cards = self._cards
            if key not in cards and len(cards) >= self._max_models:
                del cards[next(iter(cards))]  # oldest first; bounded whatever the model names
            cards[key] = card
            return card

    def _compile(self, key: _Key, now: float) -> Card | None:
        provider, model, service_tier, speed = key
        context = {k: v for k, v in (("service_tier", service_tier), ("speed", speed)) if v}
        provider_names = _provider_names(provider)
        model_l = model.lower()
        override = next((o for o in self._overrides if o.matches(provider_names, model_l)), None)
        try:
            return _compile_model(provider_names[-1], model, now, context, override)
        except Exception as e:  # a data or library problem: leave this model unpriced
            _log_once(f"compile:{provider}:{model}", f"otel-tokens: cannot price {provider} {model!r}: {e!r}")
            return None


_Key = tuple[str, str, str | None, str | None]


def _provider_names(provider: str) -> tuple[str, ...]:
    """The names an override's `provider:` may use: ours, then the genai-prices id (last)."""
    p = (provider or "").lower()
    return (p, price_provider_id(p))


def _lookup(provider_id: str, model: str) -> tuple[Provider, ModelInfo] | None:
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()  # bundled data unless the app set its own
    pid: str | None = provider_id or None
    if pid is not None:
        try:
            snapshot.find_provider(None, pid, None)
        except LookupError:
            pid = None  # a provider genai-prices does not know: find it by model name
    try:
        return snapshot.find_provider_model(model, None, pid, None)
    except LookupError:
        if "/" not in model.strip("/"):
            return None
    # "models/gemini-2.5-flash" (Gemini API), "openai/gpt-4o" (gateways): try the last part.
    try:
        return snapshot.find_provider_model(model.rstrip("/").rsplit("/", 1)[1], None, pid, None)
    except LookupError:
        return None


def _compile_model(
    provider_id: str, model: str, now: float, context: dict[str, str], override: Override | None
) -> Card | None:
    from genai_prices.types import ModelPrice

    found = _lookup(provider_id, model)
    what = f"{provider_id} {model!r}" + (f" {context}" if context else "")
    if found is None and override is None:
        return None
    mp = ModelPrice()
    expires = float("inf")
    if found is not None:
        provider, info = found
        # genai-prices applies price variants only to the provider's own models
        own = any(info is m for m in provider.models)
        mp = info.get_prices(datetime.fromtimestamp(now, UTC), context if context and own else None)
        expires = expiry(info, now)
    if override is not None:
        values = override.model_price_values(context.get("service_tier"))
        if found is None and not {"input_mtok", "output_mtok"} <= values.keys():
            _log_once(
                f"override:{override.source}",
                f"otel-tokens price file: {override.source}: genai-prices does not know {model!r}, so "
                "its entry needs input_per_mtok and output_per_mtok; the model stays unpriced",
            )
            return None
        mp = copy(mp)
        mp.__dict__.update(values)  # only the rates the entry names
        what = f"{override.source} {what}"
    return compile_card(mp, expires, what)


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
