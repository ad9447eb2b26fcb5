"""otel-tokens: OpenTelemetry telemetry for AI token spend.

``OTEL_TOKENS_ENABLED=true`` instruments every process at start-up (``.pth`` hook);
``instrument()`` / ``uninstrument()`` do it programmatically; ``task()`` and ``agent()``
attribute the calls inside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_tokens.budgets.errors import BudgetExceeded, ModelDenied
from otel_tokens.version import __version__

__all__ = ["BudgetExceeded", "ModelDenied", "__version__", "agent", "instrument", "task", "uninstrument"]

if TYPE_CHECKING:
    from otel_tokens.attribution.scopes import agent, task


def instrument(**kwargs: Any) -> None:
    """Instrument the installed LLM SDKs (see `otel_tokens.instrumentation.instrumentor.instrument`)."""
    from otel_tokens.instrumentation.instrumentor import instrument as _instrument

    _instrument(**kwargs)


def uninstrument() -> None:
    from otel_tokens.instrumentation.instrumentor import uninstrument as _uninstrument

    _uninstrument()


def __getattr__(name: str) -> Any:
    if name in ("task", "agent"):
        from otel_tokens.attribution import scopes as attribution

        return getattr(attribution, name)
    raise AttributeError(f"module 'otel_tokens' has no attribute {name!r}")
