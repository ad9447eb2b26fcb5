"""Bad input for every command: one line on stderr, exit code 2, never a traceback.
And every command's --help, with examples."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.store_helpers import Call, Run, cli, cli_env, record


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("errors") / "telemetry.db"
    record(path, [Run("t1", "fix", "S", "u", "t", "success", (Call(0.01),))])
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    (root / "garbage.db").write_bytes(b"\x00\x01 definitely not sqlite " * 50)
    other = sqlite3.connect(root / "other.db")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    other.close()
    (root / "empty.db").write_bytes(b"")
    (root / "dir.db").mkdir()
    return root


ARGS_ERRORS = [
    ([], "otel-tokens: error: the following arguments are required: COMMAND (see otel-tokens --help)"),
    (["frobnicate"], "otel-tokens: error: argument COMMAND: invalid choice: 'frobnicate'"),
    (["report", "--by", "salary"], "otel-tokens report: error: argument --by: invalid choice: 'salary'"),
    (
        ["report", "--since", "yesterday"],
        "otel-tokens report: error: argument --since: 'yesterday' is neither",
    ),
    (["report", "--since", "0h"], "otel-tokens report: error: argument --since: '0h' is not a duration"),
    (
        ["report", "--json", "--csv"],
        "otel-tokens report: error: argument --csv: not allowed with argument --json",
    ),
    (["report", "--task"], "otel-tokens report: error: argument --task: expected one argument"),
    (["report", "extra"], "otel-tokens: error: unrecognized arguments: extra"),
    (["top", "--limit", "0"], "otel-tokens top: error: argument --limit: '0' is not a positive whole number"),
    (
        ["top", "--limit", "ten"],
        "otel-tokens top: error: argument --limit: 'ten' is not a positive whole number",
    ),
    (["top", "--since", "7 days"], "otel-tokens top: error: argument --since: '7 days' is neither"),
    (["trace"], "otel-tokens trace: error: the following arguments are required: TASK_ID|TRACE_ID"),
    (["prune"], "otel-tokens prune: error: the following arguments are required: --older-than"),
    (
        ["prune", "--older-than", "30"],
        "otel-tokens prune: error: argument --older-than: '30' is not a duration",
    ),
    (
        ["prune", "--older-than", "0d"],
        "otel-tokens prune: error: argument --older-than: '0d' is not a duration",
    ),
]


@pytest.mark.parametrize(
    ("args", "message"), ARGS_ERRORS, ids=[" ".join(a) or "none" for a, _ in ARGS_ERRORS]
)
def test_bad_arguments(store: Path, args: list[str], message: str) -> None:
    if args[:1] in (["report"], ["top"], ["prune"]):
        args = [*args, "--store", str(store)] if "--task" not in args else args
    result = cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


STORE_ERRORS = [
    ("missing.db", "no otel-tokens store at {path}; run `otel-tokens demo` or an app with "
                   "OTEL_TOKENS_ENABLED=true first, or pass --store PATH"),
    ("garbage.db", "{path} is not an otel-tokens store (not an SQLite file); "
                   "check --store/$OTEL_TOKENS_STORE"),
    ("other.db", "{path} is an SQLite database but not an otel-tokens store; "
                 "point --store or $OTEL_TOKENS_STORE at an otel-tokens store"),
    ("empty.db", "store {path} is empty: no telemetry has been recorded yet"),
    ("dir.db", "{path} is a directory; the store is a file (e.g. {path}/telemetry.db)"),
]  # fmt: skip
COMMANDS = [["report"], ["report", "--json"], ["top"], ["trace", "t1"], ["prune", "--older-than", "30d"]]


@pytest.mark.parametrize(("name", "message"), STORE_ERRORS, ids=[s[0] for s in STORE_ERRORS])
@pytest.mark.parametrize(
    "command", COMMANDS, ids=[c[0] + ("-json" if "--json" in c else "") for c in COMMANDS]
)
def test_missing_or_foreign_store(bad_files: Path, command: list[str], name: str, message: str) -> None:
    path = bad_files / name
    before = path.read_bytes() if path.is_file() else None
    result = cli(*command, "--store", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"otel-tokens: {message.format(path=path)}\n"
    assert (path.read_bytes() if path.is_file() else None) == before  # never modified
    assert not Path(str(path) + "-wal").exists()


@pytest.mark.parametrize("name", ["garbage.db", "other.db", "dir.db"])
def test_demo_refuses_a_foreign_store_before_doing_anything(bad_files: Path, name: str) -> None:
    path = bad_files / name
    result = cli("demo", "--store", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    message = dict(STORE_ERRORS)[name].format(path=path)
    assert result.stderr == f"otel-tokens: {message}\n"


def test_store_from_the_environment(bad_files: Path, store: Path) -> None:
    result = cli("report", env=cli_env(OTEL_TOKENS_STORE=str(bad_files / "garbage.db")))
    assert result.returncode == 2 and "garbage.db is not an otel-tokens store" in result.stderr
    assert cli("report", "--json", env=cli_env(OTEL_TOKENS_STORE=str(store))).returncode == 0


def test_trace_of_an_unknown_id(store: Path) -> None:
    for ident in ("no-such-task", "0" * 32, "zz" * 16):
        result = cli("trace", ident, "--store", str(store))
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"otel-tokens: no task or trace '{ident}' in {store}; `otel-tokens top` lists ids to trace\n"
        )


def test_empty_window_is_not_an_error(store: Path) -> None:
    result = cli("report", "--store", str(store), "--since", "2099-01-01")
    assert (result.returncode, result.stdout) == (0, "No LLM calls recorded (since 2099-01-01).\n")
    assert cli("report", "--store", str(store), "--json", "--task", "nope").stdout == "[]\n"
    assert cli("top", "--store", str(store), "--since", "2099-01-01").stdout.startswith("No LLM calls")


@pytest.mark.parametrize("command", [[], ["report"], ["top"], ["trace"], ["prune"], ["demo"]])
def test_help_has_examples(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0 and result.stderr == ""
    assert "examples:\n  otel-tokens " in result.stdout
    assert result.stdout.startswith(f"usage: otel-tokens {' '.join(command)}".rstrip())


def test_version() -> None:
    result = cli("--version")
    assert (result.returncode, result.stdout) == (0, "otel-tokens 0.1.0\n")
