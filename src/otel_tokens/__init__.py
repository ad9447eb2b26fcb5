"""otel-tokens: OpenTelemetry telemetry for AI token spend."""

from __future__ import annotations

__version__ = "0.1.0"
