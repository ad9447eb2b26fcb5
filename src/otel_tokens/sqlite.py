"""SQLite set-up shared by the budget ledger and the local store: pragmas, write transactions, backoff.

Both open their file with the same pragmas (`set_up`: ``busy_timeout``, ``synchronous =
NORMAL``, WAL mode), run every write as one ``BEGIN IMMEDIATE`` transaction rolled back on
any exception (`immediate_tx`), and retry what stays busy with jittered exponential backoff
until a deadline (`Backoff`). Each caller keeps its own backoff figures and its own test of
"busy". This module imports nothing of ours (layer 0).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

T = TypeVar("T")

BUSY_TIMEOUT_MS: Final = 5000
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6


def is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED by the error code, or by the message where there is none."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


@dataclass(frozen=True)
class Backoff:
    """Retry an action while it raises a busy `sqlite3.OperationalError`, until ``deadline_s``."""

    deadline_s: float
    first_delay_s: float
    max_delay_s: float
    busy: Callable[[sqlite3.OperationalError], bool] = is_busy

    def retrying(self, action: Callable[[], T]) -> T:
        end = time.monotonic() + self.deadline_s
        delay = self.first_delay_s
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not self.busy(exc) or time.monotonic() >= end:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.max_delay_s)


def immediate_tx(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``body`` in one ``BEGIN IMMEDIATE`` transaction, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def set_up(conn: sqlite3.Connection, backoff: Backoff) -> str:
    """The shared pragmas; returns the journal mode SQLite gave (not "wal" where it cannot)."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return str(backoff.retrying(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]))
