"""otel-tokens: OpenTelemetry telemetry for AI token spend.

``OTEL_TOKENS_ENABLED=true`` instruments every process at start-up (``.pth`` hook);
``instrument()`` / ``uninstrument()`` do it programmatically; ``task()`` and ``agent()``
attribute the calls inside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "agent", "instrument", "task", "uninstrument"]

if TYPE_CHECKING:
    from .attribution import agent, task


def instrument(**kwargs: Any) -> None:
    """Instrument the installed LLM SDKs (see `otel_tokens.instrumentor.instrument`)."""
    from .instrumentor import instrument as _instrument

    _instrument(**kwargs)


def uninstrument() -> None:
    from .instrumentor import uninstrument as _uninstrument

    _uninstrument()


def __getattr__(name: str) -> Any:
    if name in ("task", "agent"):
        from . import attribution

        return getattr(attribution, name)
    raise AttributeError(f"module 'otel_tokens' has no attribute {name!r}")
