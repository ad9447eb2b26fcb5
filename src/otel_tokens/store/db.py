"""Opening the store and writing to it safely from many processes at once.

Every connection runs in WAL mode (readers never block the writer, a killed writer
leaves at most an uncommitted tail that SQLite discards) with ``synchronous=NORMAL``
(durable across process crashes; only a power cut can lose the last commits). Writes go
through `write_tx`: ``BEGIN IMMEDIATE`` takes the write lock up front, SQLite's busy
handler waits up to ``BUSY_TIMEOUT_MS``, and on a persistent SQLITE_BUSY the whole
transaction is retried with jittered backoff until a deadline. "database is locked"
therefore never reaches the caller unless the store stayed locked for the whole deadline.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from otel_tokens import names as n
from otel_tokens.sqlite import BUSY_TIMEOUT_MS, Backoff, immediate_tx, is_busy, set_up
from otel_tokens.store import schema
from otel_tokens.store.paths import ensure_private_file
from otel_tokens.store.schema import StoreError, fix_for

T = TypeVar("T")


def _backoff(deadline_s: float) -> Backoff:
    return Backoff(deadline_s, first_delay_s=0.002, max_delay_s=0.2)


def _retrying(action: Callable[[], T], deadline_s: float) -> T:
    return _backoff(deadline_s).retrying(action)


def write_tx(
    conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T], deadline_s: float = 30.0
) -> T:
    """Run ``body`` in one write transaction, retried as a whole while the store is busy."""
    return _retrying(lambda: immediate_tx(conn, body), deadline_s)


def _configure(conn: sqlite3.Connection, deadline_s: float) -> None:
    mode = set_up(conn, _backoff(deadline_s))
    if mode.lower() != "wal":  # e.g. a filesystem without shared memory
        conn.execute("PRAGMA journal_mode = DELETE")


def _reject_foreign_file(path: Path) -> None:
    try:
        ok = schema.looks_like_sqlite(str(path))
    except IsADirectoryError:
        raise StoreError(f"{path} is a directory; the store is a file (e.g. {path}/telemetry.db)") from None
    except OSError as exc:
        raise StoreError(f"cannot read store {path}: {exc.strerror}") from None
    if not ok:
        raise StoreError(
            f"{path} is not an otel-tokens store (not an SQLite file); check --store/${n.ENV_STORE}"
        )


def _read_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """`schema.stored_version` from one consistent snapshot (another process may be creating it)."""
    conn.execute("BEGIN")
    try:
        return schema.stored_version(conn, str(path))
    finally:
        conn.execute("COMMIT")


def open_for_writing(path: Path, deadline_s: float = 30.0) -> sqlite3.Connection:
    """Open (creating it 0600 in a 0700 directory if needed) and bring the schema up to date."""
    try:
        ensure_private_file(path)
    except OSError as exc:
        raise StoreError(
            f"cannot create store {path}: {exc.strerror} {fix_for(str(exc.strerror), str(path))}"
        ) from None
    _reject_foreign_file(path)
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Refuse someone else's database before touching it (WAL mode rewrites the header).
        _retrying(lambda: _read_version(conn, path), deadline_s)
        _configure(conn, deadline_s)
        write_tx(conn, lambda c: schema.create_or_migrate(c, str(path)), deadline_s)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_busy(exc):
            raise StoreError(f"store {path} stayed locked for {deadline_s:.0f}s") from None
        raise StoreError(
            f"{path} is not a usable otel-tokens store ({exc}) {fix_for(str(exc), str(path))}"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection:
    """Open an existing store for the CLI; StoreError with one clear line otherwise."""
    if not path.exists():
        raise StoreError(
            f"no otel-tokens store at {path}; run `otel-tokens demo` or an app with "
            f"OTEL_TOKENS_ENABLED=true first, or pass --store PATH"
        )
    _reject_foreign_file(path)
    if path.stat().st_size == 0:
        raise StoreError(f"store {path} is empty: no telemetry has been recorded yet")
    uri = f"file:{path.resolve().as_posix()}?mode=rw"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.OperationalError:
        conn = sqlite3.connect(uri.replace("mode=rw", "mode=ro"), uri=True, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _retrying(lambda: _read_version(conn, path), 30.0)
        if version is None:
            raise StoreError(f"store {path} is empty: no telemetry has been recorded yet")
        schema.check_version(version, str(path))
        if version != schema.SCHEMA_VERSION:
            write_tx(conn, lambda c: schema.create_or_migrate(c, str(path)))
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(
            f"{path} is not a usable otel-tokens store ({exc}) {fix_for(str(exc), str(path))}"
        ) from None
    except BaseException:
        conn.close()
        raise
    return conn


def file_bytes(path: Path) -> int:
    """Size on disk of the store including its WAL."""
    total = 0
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += os.path.getsize(p)
    return total
