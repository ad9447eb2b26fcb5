"""Which ledger: ``OTEL_TOKENS_LEDGER`` unset or ``sqlite:///PATH`` is the local SQLite file
(beside the local store), ``redis://...`` is Redis."""

from __future__ import annotations

import os
from pathlib import Path

from otel_tokens import names as n
from otel_tokens.budgets.ledger import LEDGER_FILE, Ledger, LedgerError


def default_ledger_path() -> Path:
    """Beside the local store: ``$OTEL_TOKENS_STORE``'s directory or the per-user data dir."""
    explicit = os.environ.get(n.ENV_STORE, "").strip()
    if explicit:
        return Path(explicit).expanduser().parent / LEDGER_FILE
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "otel-tokens" / LEDGER_FILE


def ledger_url() -> str:
    return os.environ.get(n.ENV_LEDGER, "").strip() or f"sqlite:///{default_ledger_path()}"


def open_ledger(url: str | None = None) -> Ledger:
    url = url or ledger_url()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from otel_tokens.budgets.ledger_redis import RedisLedger

        return RedisLedger(url)
    if url.startswith("sqlite:///"):
        from otel_tokens.budgets.ledger_sqlite import SQLiteLedger

        return SQLiteLedger(Path(url.removeprefix("sqlite:///")))
    raise LedgerError(
        f"{n.ENV_LEDGER}={url!r} is not a ledger URL"
        " (fix: redis://HOST:6379/0, or unset it for the local file)"
    )
