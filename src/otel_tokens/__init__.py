"""otel-tokens: OpenTelemetry telemetry for AI token spend.

``OTEL_TOKENS_ENABLED=true`` instruments every process at start-up (``.pth`` hook);
``instrument()`` / ``uninstrument()`` do it programmatically.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "instrument", "uninstrument"]


def instrument(**kwargs: Any) -> None:
    """Instrument the installed LLM SDKs (see `otel_tokens.instrumentor.instrument`)."""
    from .instrumentor import instrument as _instrument

    _instrument(**kwargs)


def uninstrument() -> None:
    from .instrumentor import uninstrument as _uninstrument

    _uninstrument()
