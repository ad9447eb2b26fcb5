"""Who bills a call: the provider resolver.

API (small and stable; every adapter builds on it)::

    resolver = default_pricer().providers           # env + price file; or ProviderResolver(map)
    name = resolver.resolve(sdk_provider, host, port, path="")   # -> gen_ai.provider.name
    price_provider_id(name)                       # gen_ai.provider.name -> genai-prices id
    provider_name(price_id)                       # genai-prices id -> gen_ai.provider.name
    parse_provider_map(obj, source)               # (map, errors) for env / price-file maps

The instrumentation core resolves the provider for every adapter whose SDK resource has
``_client.base_url`` (openai, anthropic). Other adapters (google-genai, litellm, bedrock, ...)
call ``recorder.pricer.providers.resolve(...)`` themselves and pass the result to
``Recorder.start`` and ``CallRecord(provider=...)``; the pricer maps it to a genai-prices id.

``sdk_provider`` is the provider the SDK was built for (``openai``, ``anthropic``, ...): what
``gen_ai.provider.name`` is when nothing else decides. ``host``/``port``/``path`` are the
client's base URL (``path`` only matters for gateways that route by path, e.g. Hugging Face's
router or Cloudflare's AI gateway). The SDK only decides how a response is read; the server
address decides who bills it, in this order:

1. the user's map: ``OTEL_TOKENS_PROVIDERS`` (a JSON object ``{"host[:port]": "provider"}``,
   e.g. ``{"llm-gw.internal:8443": "groq"}``), then the price file's ``providers:`` mapping;
   ``host:port`` is tried before ``host``. Values are genai-prices provider ids (``groq``,
   ``deepseek``, ``openrouter``, ``azure`` ...) or ``gen_ai.provider.name`` values;
2. the well-known hosts of the SDKs' own providers (no price data needed);
3. genai-prices' own matching: each provider's ``api_pattern`` against ``https://host[:port]/path``
   (Groq, DeepSeek, OpenRouter, Gemini's and Vertex's OpenAI-compatible APIs, Azure OpenAI and
   Azure AI Foundry, Bedrock, Mistral, x.ai, Together, Fireworks, ...);
4. loopback and unknown hosts: ``sdk_provider``.

The result is a ``gen_ai.provider.name`` (semantic-convention values such as
``azure.ai.openai``, ``gcp.gemini``, ``x_ai`` where they exist, else the genai-prices id, e.g.
``openrouter``). Results are cached per base URL; `resolve` never raises.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Final

from otel_tokens import names

__all__ = [
    "ProviderResolver",
    "parse_provider_map",
    "price_provider_id",
    "provider_name",
]

_log = logging.getLogger("otel_tokens")

# gen_ai.provider.name (semantic conventions) -> genai-prices provider id.
_PRICE_IDS: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "moonshot_ai": "moonshotai",
}

# genai-prices provider id -> gen_ai.provider.name, where the conventions name it.
_NAMES: Final[Mapping[str, str]] = {
    "google": "gcp.gemini",
    "aws": "aws.bedrock",
    "azure": "azure.ai.openai",
    "x-ai": "x_ai",
    "mistral": "mistral_ai",
    "moonshotai": "moonshot_ai",
}

# Hosts decided without loading the price data (~0.25 s).
_KNOWN_HOSTS: Final[Mapping[str, str]] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "openrouter.ai": "openrouter",
    "api.x.ai": "x_ai",
    "api.mistral.ai": "mistral_ai",
}
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})
_MAX_CACHE: Final = 1024


def price_provider_id(name: str) -> str:
    """The genai-prices provider id for a ``gen_ai.provider.name`` (itself when unknown)."""
    p = (name or "").strip().lower()
    return _PRICE_IDS.get(p, p)


def provider_name(price_id: str) -> str:
    """The ``gen_ai.provider.name`` for a genai-prices provider id (or a name already)."""
    p = (price_id or "").strip().lower()
    return _NAMES.get(p, p)


def _host_name(host: str) -> str | None:
    """Names that need the host as well as genai-prices' provider id."""
    if host == "aiplatform.googleapis.com" or host.endswith("-aiplatform.googleapis.com"):
        return "gcp.vertex_ai"
    if host.endswith(".services.ai.azure.com") or host.endswith(".models.ai.azure.com"):
        return "azure.ai.inference"
    return None


def parse_provider_map(obj: object, source: str) -> tuple[dict[str, str], list[str]]:
    """Validate a ``{"host[:port]": "provider"}`` map: (lower-cased map, one message per problem).

    Keys are a host, optionally with ``:port``, never a URL; values are non-empty names.
    """
    example = '{"llm-gw.internal:8443": "groq"}'
    if not isinstance(obj, Mapping):
        return {}, [f"{source}: the provider map must be a JSON object; it is ignored (fix: e.g. {example})"]
    out: dict[str, str] = {}
    errors: list[str] = []
    for key, value in obj.items():
        k = str(key).strip().lower()
        if not k or "/" in k or " " in k:
            errors.append(
                f"{source}: key {key!r} must be a host or host:port, not a URL (fix: e.g. {example})"
            )
            continue
        if not isinstance(value, str) or not value.strip():
            errors.append(f'{source}: {key!r} must map to a provider id such as "groq" (fix: e.g. {example})')
            continue
        out[k] = value.strip().lower()
    return out, errors


def _env_map(text: str) -> dict[str, str]:
    try:
        obj = json.loads(text)
    except ValueError as e:
        _log_once(
            f"env:{text}",
            f"otel-tokens: {names.ENV_PROVIDERS} is not valid JSON ({e}); it is ignored "
            '(fix: e.g. {"llm-gw.internal:8443": "groq"})',
        )
        return {}
    mapping, errors = parse_provider_map(obj, names.ENV_PROVIDERS)
    for error in errors:
        _log_once(f"env:{error}", f"otel-tokens: {error}; that entry is ignored")
    return mapping


class ProviderResolver:
    """Decides ``gen_ai.provider.name`` from the base URL; see the module docstring."""

    def __init__(self, user_map: Mapping[str, str] | None = None, *, read_env: bool = True) -> None:
        self._file_map = {k.lower(): v.lower() for k, v in (user_map or {}).items()}
        self._read_env = read_env
        self._env_text: str | None = None
        self._env_map: dict[str, str] = {}
        self._cache: dict[tuple[str, str, int | None, str, str | None], str] = {}
        self._lock = threading.Lock()

    def resolve(self, sdk_provider: str, host: str | None, port: int | None = None, path: str = "") -> str:
        """The ``gen_ai.provider.name`` for a call sent to ``host[:port]/path``. Never raises."""
        env = os.environ.get(names.ENV_PROVIDERS) if self._read_env else None
        key = (sdk_provider, host or "", port, path, env)
        got = self._cache.get(key)
        if got is not None:
            return got
        try:
            got = self._decide(sdk_provider, (host or "").strip().lower(), port, path or "", env)
        except Exception:
            _log_once("resolve", "otel-tokens: provider resolution failed; using the SDK's provider")
            got = sdk_provider
        with self._lock:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = got
        return got

    def user_provider(self, host: str, port: int | None, env: str | None = None) -> str | None:
        """The provider the user named for ``host[:port]``, if any (env first, then file)."""
        maps = (self._env(env), self._file_map)
        keys = (f"{host}:{port}", host) if port is not None else (host,)
        for mapping in maps:
            for k in keys:
                if k in mapping:
                    return mapping[k]
        return None

    def _env(self, env: str | None) -> dict[str, str]:
        if not env:
            return {}
        if env != self._env_text:
            self._env_map = _env_map(env)
            self._env_text = env
        return self._env_map

    def _decide(self, sdk_provider: str, host: str, port: int | None, path: str, env: str | None) -> str:
        if not host:
            return sdk_provider
        user = self.user_provider(host, port, env)
        if user is not None:
            return provider_name(user)
        known = _KNOWN_HOSTS.get(host)
        if known is not None:
            return known
        if host in _LOOPBACK or host.endswith(".localhost"):
            return sdk_provider
        special = _host_name(host)
        if special is not None:
            return special
        found = _match_url(host, port, path)
        return provider_name(found) if found is not None else sdk_provider


def _match_url(host: str, port: int | None, path: str) -> str | None:
    """genai-prices' own provider matching on the URL (its ``api_pattern``s)."""
    import re

    from genai_prices import data_snapshot

    netloc = host if port in (None, 443) else f"{host}:{port}"
    url = f"https://{netloc}/{path.lstrip('/')}"
    for provider in data_snapshot.get_snapshot().providers:
        if provider.id == "openai-decisions":
            continue
        if re.match(provider.api_pattern, url):
            return provider.id
    return None


_logged: set[str] = set()


def _log_once(key: str, message: str) -> None:
    if key not in _logged and len(_logged) < 1000:
        _logged.add(key)
        _log.warning(message)
