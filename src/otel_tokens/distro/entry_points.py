"""The `opentelemetry_distro` entry point `otel_tokens`.

`opentelemetry-instrument` loads one distro before the instrumentors (the first installed,
or the one named by ``OTEL_PYTHON_DISTRO``). When it is ours, providers are configured from
the standard ``OTEL_*`` variables unless the app or another component already set them; when
another distro is chosen, it configures and our instrumentors only patch.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from otel_tokens.distro.bootstrap import configure_providers
from otel_tokens.guard import internal_error


class OtelTokensDistro(BaseDistro):  # type: ignore[misc]
    def _configure(self, **kwargs: Any) -> None:
        try:
            configure_providers()
        except Exception as exc:
            internal_error("configure providers", exc)
