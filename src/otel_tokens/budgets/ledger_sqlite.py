"""The default ledger: one SQLite file beside the local store, exact across local processes.

Every reservation and settlement is one ``BEGIN IMMEDIATE`` transaction (SQLite's write
lock serialises them across processes), retried while the file is busy. WAL mode, so a
killed process leaves at most an uncommitted transaction that SQLite discards.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from otel_tokens.budgets.ledger import Charge, Hold, Key, LedgerError, Refusal, Row, Settled
from otel_tokens.budgets.policy import crossings

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
  budget TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,
  spent INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0,
  first REAL NOT NULL, updated REAL NOT NULL, keep_until REAL NOT NULL,
  PRIMARY KEY (budget, scope, period)
);
CREATE TABLE IF NOT EXISTS holds (
  rid TEXT NOT NULL, budget TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,
  amount INTEGER NOT NULL, expires REAL NOT NULL,
  PRIMARY KEY (budget, scope, period, rid)
);
CREATE INDEX IF NOT EXISTS holds_rid ON holds (rid);
CREATE INDEX IF NOT EXISTS holds_expires ON holds (expires);
"""
_DEADLINE_S = 30.0


class SQLiteLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 5000")
                conn.execute("PRAGMA synchronous = NORMAL")
                self._retrying(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
                self._retrying(lambda: conn.executescript(_SCHEMA))
                now = time.time()
                self._retrying(lambda: conn.execute("DELETE FROM spend WHERE keep_until < ?", (now,)))
            except (sqlite3.Error, OSError) as exc:
                raise LedgerError(f"cannot open the budget ledger {self.path}: {exc}") from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    @staticmethod
    def _retrying(action: Callable[[], T]) -> T:
        end = time.monotonic() + _DEADLINE_S
        delay = 0.001
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= end:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)

    def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()

            def attempt() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

            try:
                return self._retrying(attempt)
            except sqlite3.Error as exc:
                raise LedgerError(f"budget ledger {self.path}: {exc}") from exc

    def reserve(self, rid: str, holds: Sequence[Hold], expires: float, now: float) -> Refusal | None:
        def body(conn: sqlite3.Connection) -> Refusal | None:
            conn.execute("DELETE FROM holds WHERE expires < ?", (now,))
            for i, hold in enumerate(holds):
                spent = _spent(conn, hold.key)
                held = _held(conn, hold.key)
                if spent + held + hold.amount > hold.limit:
                    return Refusal(i, spent, held)
            for hold in holds:
                conn.execute(
                    "INSERT INTO holds VALUES (?, ?, ?, ?, ?, ?)", (rid, *hold.key, hold.amount, expires)
                )
                conn.execute(
                    "INSERT INTO spend (budget, scope, period, first, updated, keep_until)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO UPDATE SET keep_until = max(keep_until, excluded.keep_until)",
                    (*hold.key, now, now, hold.keep_until),
                )
            return None

        return self._tx(body)

    def settle(self, rid: str, charges: Sequence[Charge], now: float) -> list[Settled]:
        def body(conn: sqlite3.Connection) -> list[Settled]:
            conn.execute("DELETE FROM holds WHERE rid = ?", (rid,))
            out: list[Settled] = []
            for charge in charges:
                spent, reported = conn.execute(
                    "INSERT INTO spend (budget, scope, period, spent, first, updated, keep_until)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET spent = spent + excluded.spent,"
                    " updated = excluded.updated, keep_until = max(keep_until, excluded.keep_until)"
                    " RETURNING spent, reported",
                    (*charge.key, charge.cost, now, now, charge.keep_until),
                ).fetchone()
                mask = crossings(charge.thresholds, spent, reported)
                if mask:
                    conn.execute(
                        "UPDATE spend SET reported = reported | ?"
                        " WHERE budget = ? AND scope = ? AND period = ?",
                        (mask, *charge.key),
                    )
                out.append(Settled(spent, mask))
            return out

        return self._tx(body)

    def release(self, rid: str, keys: Sequence[Key]) -> None:
        self._tx(lambda conn: conn.execute("DELETE FROM holds WHERE rid = ?", (rid,)))

    def holders(self, key: Key) -> list[str]:
        with self._lock:
            rows = self._connection().execute(
                "SELECT rid FROM holds WHERE budget = ? AND scope = ? AND period = ?", key
            )
            return [r[0] for r in rows]

    def rows(self, budget: str, period: str) -> list[Row]:
        with self._lock:
            conn = self._connection()
            now = time.time()
            result = conn.execute(
                "SELECT s.scope, s.spent, (SELECT coalesce(sum(h.amount), 0) FROM holds h"
                " WHERE h.budget = s.budget AND h.scope = s.scope AND h.period = s.period"
                " AND h.expires >= ?), s.first, s.updated"
                " FROM spend s WHERE s.budget = ? AND s.period LIKE ? ORDER BY s.spent DESC",
                (now, budget, period),
            )
            return [Row(*r) for r in result]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _spent(conn: sqlite3.Connection, key: Key) -> int:
    row = conn.execute(
        "SELECT spent FROM spend WHERE budget = ? AND scope = ? AND period = ?", key
    ).fetchone()
    return int(row[0]) if row else 0


def _held(conn: sqlite3.Connection, key: Key) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM holds WHERE budget = ? AND scope = ? AND period = ?", key
    ).fetchone()
    return int(row[0])
