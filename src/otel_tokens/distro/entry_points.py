"""The `opentelemetry-instrument` entry points: distro and configurator, both ``otel_tokens``.

`opentelemetry-instrument` loads one distro (the first installed, or the one named by
``OTEL_PYTHON_DISTRO``) and calls its ``configure()``, then one configurator (the first, or
``OTEL_PYTHON_CONFIGURATOR``), then the instrumentors. As in the standard
``opentelemetry-distro``, the distro only prepares and the configurator sets providers:

* `OtelTokensDistro` sets no provider; it defers our configuration to the first
  instrumented call or task, a fallback for when no configurator runs at all;
* `OtelTokensConfigurator` configures providers from the standard ``OTEL_*`` variables at
  start-up (what a configurator is for: every instrumentation's spans need them), keeping
  any provider already set. When another configurator is chosen, it configures and ours
  does not run.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator

from otel_tokens import firstuse
from otel_tokens.distro.bootstrap import configure_at_first_use, configure_providers
from otel_tokens.guard import internal_error


class OtelTokensDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        configure_at_first_use()


class OtelTokensConfigurator(_BaseConfigurator):
    def _configure(self, **kwargs: Any) -> None:
        firstuse.defer(None)
        try:
            configure_providers()
        except Exception as exc:
            internal_error("configure providers", exc)
