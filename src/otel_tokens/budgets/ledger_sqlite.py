"""The default ledger: one SQLite file beside the local store, exact across local processes.

Every reservation and settlement is one ``BEGIN IMMEDIATE`` transaction (SQLite's write
lock serialises them across processes), retried while the file is busy. WAL mode, so a
killed process leaves at most an uncommitted transaction that SQLite discards.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from otel_tokens.budgets.ledger import Charge, Hold, Key, LedgerError, Refusal, Row, Settled
from otel_tokens.budgets.policy import crossings
from otel_tokens.sqlite import Backoff, immediate_tx, set_up

T = TypeVar("T")

# Both tables are clustered on their primary key (WITHOUT ROWID) and have no other index: a
# commit writes one page per table it touches, and every statement below is a primary-key
# lookup. (Files made before this layout keep their tables and indexes; the statements work
# on both.)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
  budget TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,
  spent INTEGER NOT NULL DEFAULT 0, reported INTEGER NOT NULL DEFAULT 0,
  first REAL NOT NULL, updated REAL NOT NULL, keep_until REAL NOT NULL,
  PRIMARY KEY (budget, scope, period)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
  rid TEXT NOT NULL, budget TEXT NOT NULL, scope TEXT NOT NULL, period TEXT NOT NULL,
  amount INTEGER NOT NULL, expires REAL NOT NULL,
  PRIMARY KEY (budget, scope, period, rid)
) WITHOUT ROWID;
"""
_K = "budget = ? AND scope = ? AND period = ?"
# spent, live holds (lapsed ones never count), whether lapsed ones are left, keep_until
_STATE = (
    "SELECT coalesce(s.spent, 0), coalesce(h.live, 0), coalesce(h.lapsed, 0), s.keep_until FROM"
    " (SELECT sum(CASE WHEN expires >= ? THEN amount ELSE 0 END) AS live,"
    f" max(expires < ?) AS lapsed FROM holds WHERE {_K}) h"
    " LEFT JOIN spend s ON s.budget = ? AND s.scope = ? AND s.period = ?"
)
_DROP_LAPSED = f"DELETE FROM holds WHERE {_K} AND expires < ?"
_HOLD = "INSERT OR REPLACE INTO holds (rid, budget, scope, period, amount, expires) VALUES (?, ?, ?, ?, ?, ?)"
_OPEN = (
    "INSERT INTO spend (budget, scope, period, first, updated, keep_until) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET keep_until = max(keep_until, excluded.keep_until)"
)
_UNHOLD = f"DELETE FROM holds WHERE {_K} AND rid = ?"
_CHARGE = (
    "INSERT INTO spend (budget, scope, period, spent, first, updated, keep_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET spent = spent + excluded.spent,"
    " updated = excluded.updated, keep_until = max(keep_until, excluded.keep_until)"
    " RETURNING spent, reported"
)
_REPORTED = f"UPDATE spend SET reported = reported | ? WHERE {_K}"


def _busy(exc: sqlite3.OperationalError) -> bool:
    """Busy by the message alone (the store's `is_busy` reads the error code first)."""
    return "locked" in str(exc) or "busy" in str(exc)


_BACKOFF = Backoff(30.0, first_delay_s=0.001, max_delay_s=0.05, busy=_busy)


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
                set_up(conn, _BACKOFF)
                _BACKOFF.retrying(lambda: conn.executescript(_SCHEMA))
                now = time.time()
                _BACKOFF.retrying(lambda: conn.execute("DELETE FROM spend WHERE keep_until < ?", (now,)))
                _BACKOFF.retrying(lambda: conn.execute("DELETE FROM holds WHERE expires < ?", (now,)))
            except (sqlite3.Error, OSError) as exc:
                raise LedgerError(f"cannot open the budget ledger {self.path}: {exc}") from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _tx(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            try:
                return _BACKOFF.retrying(lambda: immediate_tx(conn, body))
            except sqlite3.Error as exc:
                raise LedgerError(f"budget ledger {self.path}: {exc}") from exc

    def reserve(self, rid: str, holds: Sequence[Hold], expires: float, now: float) -> Refusal | None:
        def body(conn: sqlite3.Connection) -> Refusal | None:
            kept: list[float | None] = []
            for i, hold in enumerate(holds):
                spent, held, lapsed, keep = conn.execute(_STATE, (now, now, *hold.key, *hold.key)).fetchone()
                kept.append(keep)
                if lapsed:  # holds of a process that died elsewhere, past their TTL
                    conn.execute(_DROP_LAPSED, (*hold.key, now))
                if spent + held + hold.amount > hold.limit:
                    return Refusal(i, spent, held)
            for hold in holds:
                conn.execute(_HOLD, (rid, *hold.key, hold.amount, expires))
            for hold, keep in zip(holds, kept, strict=True):
                if keep is None or keep < hold.keep_until:  # the key's first call (this period)
                    conn.execute(_OPEN, (*hold.key, now, now, hold.keep_until))
            return None

        return self._tx(body)

    def settle(self, rid: str, charges: Sequence[Charge], now: float) -> list[Settled]:
        def body(conn: sqlite3.Connection) -> list[Settled]:
            out: list[Settled] = []
            for charge in charges:
                if charge.held:
                    conn.execute(_UNHOLD, (*charge.key, rid))
                spent, reported = conn.execute(
                    _CHARGE, (*charge.key, charge.cost, now, now, charge.keep_until)
                ).fetchone()
                mask = crossings(charge.thresholds, spent, reported)
                if mask:
                    conn.execute(_REPORTED, (mask, *charge.key))
                out.append(Settled(spent, mask))
            return out

        return self._tx(body)

    def release(self, rid: str, keys: Sequence[Key]) -> None:
        def body(conn: sqlite3.Connection) -> None:
            for key in keys:
                conn.execute(_UNHOLD, (*key, rid))

        self._tx(body)

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
