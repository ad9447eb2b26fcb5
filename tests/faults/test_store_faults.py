"""Local store faults: the app's calls are unaffected, one clear line, no foreign file touched.

Each case runs the fault app as a subprocess with ``OTEL_TOKENS_ENABLED=true`` and the store
(``OTEL_TOKENS_STORE``) in a bad state: a read-only directory, a full disk (RLIMIT_FSIZE, with
SIGXFSZ ignored so writes fail with EFBIG as on a full file system), a file that is not SQLite,
someone else's SQLite database, a store of a newer schema, a store corrupted in the middle.
"""

from __future__ import annotations

import hashlib
import resource
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import app
from tests.faults.runapp import AppRun, app_env, run_app, without_dac_override

pytestmark = pytest.mark.faults

CALLS = 30
QUICK = ("--anthropic-every", "0")  # openai only: a second SDK import is 1 s of CPU


def _expected_answers(calls: int) -> list[str]:
    return [app.ANSWER] * calls


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


def _one_line(run: AppRun, *needles: str) -> str:
    assert run.returncode == 0, run.stderr
    assert run.summary["answers"] == _expected_answers(len(run.summary["answers"]))
    assert "Traceback" not in run.stderr
    ours = [line for line in run.lines if "otel-tokens" in line or "otel_tokens" in line]
    assert len(ours) == 1, run.lines
    assert ours == run.lines, run.lines  # nothing else on stderr either
    for needle in needles:
        assert needle in ours[0], (needle, ours[0])
    return ours[0]


def _made_store(path: Path) -> None:
    run = run_app(3, app_env(OTEL_TOKENS_STORE=str(path)), *QUICK)
    assert run.returncode == 0 and run.lines == [], run.stderr
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert conn.execute("SELECT count(*) FROM llm_calls").fetchone() == (3,)
    conn.close()


def test_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o555)
    tmp_path.chmod(0o755)
    store = directory / "telemetry.db"
    run = run_app(CALLS, app_env(OTEL_TOKENS_STORE=str(store)), *QUICK, prefix=without_dac_override())
    _one_line(run, str(store), "Permission denied", "fix:")
    assert list(directory.iterdir()) == []


def test_read_only_store_file(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    _made_store(store)
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    tmp_path.chmod(0o555)
    before = _digest(store)
    try:
        run = run_app(CALLS, app_env(OTEL_TOKENS_STORE=str(store)), *QUICK, prefix=without_dac_override())
    finally:
        tmp_path.chmod(0o755)
    _one_line(run, str(store), "fix:")
    assert _digest(store) == before


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("limit", [16_384, 90_000], ids=["full-at-creation", "full-while-writing"])
def test_full_disk(tmp_path: Path, limit: int) -> None:
    store = tmp_path / "telemetry.db"
    calls = 200
    run = run_app(
        calls,
        app_env(OTEL_TOKENS_STORE=str(store)),
        "--stream-every",
        "0",
        *QUICK,
        preexec=_file_size_limit(limit),
    )
    _one_line(run, str(store), "fix:")
    assert len(run.summary["answers"]) == calls
    if store.exists() and store.stat().st_size > 0:  # what was written is still a sound store
        with sqlite3.connect(store) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "llm_calls" in tables:
                assert conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0] < calls


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01 definitely not sqlite " * 200)


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.close()


def _text_file(path: Path) -> None:
    path.write_text("my notes, not a database\n")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_garbage, "is not an otel-tokens store (not an SQLite file)"),
        (_foreign, "is an SQLite database but not an otel-tokens store"),
        (_text_file, "is not an otel-tokens store"),
    ],
    ids=["garbage", "foreign-sqlite", "text-file"],
)
def test_a_file_that_is_not_ours_is_never_written(
    tmp_path: Path, make: Callable[[Path], None], needle: str
) -> None:
    store = tmp_path / "telemetry.db"
    make(store)
    before, siblings, mtime = _digest(store), _siblings(store), store.stat().st_mtime_ns
    run = run_app(CALLS, app_env(OTEL_TOKENS_STORE=str(store)), *QUICK)
    _one_line(run, str(store), needle)
    assert (_digest(store), _siblings(store), store.stat().st_mtime_ns) == (before, siblings, mtime)


def test_a_store_of_a_newer_schema_is_left_alone(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    _made_store(store)
    conn = sqlite3.connect(store)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = _digest(store)
    run = run_app(CALLS, app_env(OTEL_TOKENS_STORE=str(store)), *QUICK)
    _one_line(run, str(store), "schema version 99", "upgrade otel-tokens")
    assert _digest(store) == before
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT count(*) FROM llm_calls").fetchone() == (3,)


def test_a_corrupted_store(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    _made_store(store)
    data = bytearray(store.read_bytes())
    assert len(data) > 8192
    data[4096:8192] = b"\xff" * 4096  # the second page onwards: table b-trees
    store.write_bytes(bytes(data))
    run = run_app(CALLS, app_env(OTEL_TOKENS_STORE=str(store)), *QUICK)
    _one_line(run, str(store), "fix:")
