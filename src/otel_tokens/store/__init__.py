"""The embedded local store: an SQLite file per user that the CLI reads.

`SQLiteSpanExporter` is imported lazily so the CLI does not load the OpenTelemetry SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_tokens.store.paths import default_store_path
from otel_tokens.store.schema import SCHEMA_VERSION, StoreError

if TYPE_CHECKING:
    from otel_tokens.store.exporter import SQLiteSpanExporter

__all__ = ["SCHEMA_VERSION", "SQLiteSpanExporter", "StoreError", "default_store_path"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteSpanExporter":
        from otel_tokens.store.exporter import SQLiteSpanExporter

        return SQLiteSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
