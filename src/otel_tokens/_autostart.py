"""Imported by the ``otel_tokens_autostart.pth`` hook only when OTEL_TOKENS_ENABLED is truthy."""

from __future__ import annotations

from otel_tokens.distro.bootstrap import start

start()
