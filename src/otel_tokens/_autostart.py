"""Imported by the ``otel_tokens_autostart.pth`` hook only when OTEL_TOKENS_ENABLED is truthy."""

from __future__ import annotations

from .bootstrap import start

start()
