"""Bad input everywhere: every variable, file and CLI argument with a malformed value.

Variables: the app runs as usual (its calls unchanged) and stderr holds exactly one line that
names the variable and the fix. CLI: exit code 2, one line naming the argument, no traceback.
Every ``OTEL_TOKENS_*`` name in `names.py` is either tested here with a malformed value or
listed in FREE_TEXT (any string is a valid value) or INTERNAL (the test suite's own switch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_tokens import names as n
from tests.faults import app
from tests.faults.runapp import app_env, run_app

pytestmark = pytest.mark.faults

QUICK = ("--anthropic-every", "0")
FREE_TEXT = {n.ENV_USER, n.ENV_TEAM, n.ENV_TASK, n.ENV_TASK_ID, n.ENV_TASK_SIZE, n.ENV_USER_HASH_KEY}
INTERNAL = {"OTEL_TOKENS_RAISE_INTERNAL_ERRORS"}
# read by `otel-tokens stack generate`, tested with the CLI below
CLI_ONLY = {n.ENV_BUDGET_FILE}
# read only when OTEL_TOKENS_BUDGETS names a budget file (the budgets engineer's tests)
WITH_BUDGETS_ONLY = {n.ENV_LEDGER, n.ENV_RESERVATION_TTL}


def _bad_prices(tmp: Path) -> str:
    path = tmp / "prices.yaml"
    path.write_text("models:\n  - model: my-model\n    input_per_mtok: 1\n    output_per_mtok: abc\n")
    return str(path)


def _a_directory(tmp: Path) -> str:
    (tmp / "store-dir").mkdir()
    return str(tmp / "store-dir")


VARIABLES: list[Any] = [
    (n.ENV_ENABLED, "maybe", ("fix:",)),
    (n.ENV_HASH_USER_IDS, "ture", ("fix:",)),
    (n.ENV_CAPTURE_CONTENT, "sometimes", ("fix:",)),
    (n.ENV_MAX_ATTR_VALUES, "lots", ("fix:",)),
    (n.ENV_MAX_ATTR_VALUES, "-3", ("fix:",)),
    (n.ENV_MAX_SERIES, "many", ("fix:",)),
    (n.ENV_PRICES, "/nonexistent/prices.yaml", ("fix:",)),
    (n.ENV_PRICES, _bad_prices, ("prices.yaml:4", "output_per_mtok", "fix:")),
    (n.ENV_PROVIDERS, "{not json", ("fix:",)),
    (n.ENV_PROVIDERS, "[1, 2]", ("fix:",)),
    (n.ENV_STORE, _a_directory, ("is a directory",)),
    (n.ENV_REPORT_DIR, "/nonexistent/report-dir", ("fix:",)),
    (n.ENV_PARENT, "{not json", ("unset it",)),
    (n.ENV_BUDGETS, "/nonexistent/budgets.yaml", ("fix:", "budgets that parsed apply: none")),
]


def test_every_variable_is_covered() -> None:
    ours = {
        value
        for name, value in vars(n).items()
        if name.startswith("ENV_") and isinstance(value, str) and value.startswith("OTEL_TOKENS_")
    }
    tested = {(v.values if hasattr(v, "values") else v)[0] for v in VARIABLES}
    assert ours - tested - FREE_TEXT - INTERNAL - CLI_ONLY - WITH_BUDGETS_ONLY == set()


@pytest.mark.parametrize(
    ("name", "value", "needles"),
    VARIABLES,
    ids=[
        f"{v[0]}={v[1] if isinstance(v[1], str) else v[1].__name__}"
        for v in (getattr(p, "values", p) for p in VARIABLES)
    ],
)
def test_a_malformed_variable_gives_one_line_and_the_app_runs(
    tmp_path: Path, name: str, value: object, needles: tuple[str, ...]
) -> None:
    text = value(tmp_path) if callable(value) else str(value)
    env = app_env(**{name: text})
    if name != n.ENV_STORE:
        env[n.ENV_STORE] = str(tmp_path / "telemetry.db")
    run = run_app(2, env, *QUICK)
    assert run.returncode == 0, run.stderr
    assert run.summary["answers"] == [app.ANSWER] * 2
    assert "Traceback" not in run.stderr
    assert len(run.lines) == 1, run.lines
    line = run.lines[0]
    assert line.startswith("otel-tokens"), line
    assert name in line or (callable(value) and text in line), line
    for needle in needles:
        assert needle in line, (needle, line)


# --- the CLI ---------------------------------------------------------------------------------

BAD_VALUE = {"parse_since": "soon", "parse_duration": "a while", "_positive": "-1", "int": "seven"}


def _cli_cases() -> list[tuple[str, ...]]:
    """One malformed value for every option of every subcommand that has a type or choices."""
    from otel_tokens.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases: list[tuple[str, ...]] = []
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            if action.choices is not None:
                bad = "no-such-choice"
            elif action.type is not None:
                bad = BAD_VALUE[getattr(action.type, "__name__", "")]
            else:
                continue
            if action.option_strings:
                cases.append((command, action.option_strings[-1], bad))
            else:
                cases.append((command, bad))
        if any(a.required for a in subparser._actions):
            cases.append((command,))  # a required argument missing
    return cases


CLI_CASES = [
    *_cli_cases(),
    ("report", "--by"),
    ("frobnicate",),
    ("report", "--json", "--csv"),
    ("prices", "check", "/nonexistent/prices.yaml"),
    ("stack", "generate", "--budgets", "/nonexistent/budgets.yaml"),
    ("run", "--size"),
    ("run", "--no-such-option", "--", "true"),
]


def test_every_typed_cli_option_is_swept() -> None:
    swept = {(c[0], c[1]) for c in CLI_CASES if len(c) > 2 and c[1].startswith("--")}
    assert {("report", "--since"), ("report", "--by"), ("top", "--limit"), ("prune", "--older-than")} <= swept
    assert {("demo", "--tasks"), ("demo", "--seed")} <= swept
    assert len(CLI_CASES) >= 20


@pytest.mark.parametrize("argv", CLI_CASES, ids=[" ".join(c) for c in CLI_CASES])
def test_a_malformed_cli_argument_exits_2_with_one_line(
    argv: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_tokens.cli.main import main

    monkeypatch.setenv(n.ENV_STORE, str(tmp_path / "none.db"))
    monkeypatch.chdir(tmp_path)
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    assert out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("otel-tokens"), line
    assert any(a in line for a in argv[1:] or argv) or "required" in line, line
    assert "--help" in line or "fix" in line or "check" in line or "(" in line, line


def test_the_real_entry_point_exits_2_without_a_traceback(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "report", "--since", "soon", "--store", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "--since" in done.stderr
