"""``otel-tokens run``: any command as a task, its exit status as the outcome."""

from __future__ import annotations

import json
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from otel_tokens import names as n
from otel_tokens.cli import run
from tests.attribution_helpers import Providers, providers

__all__ = ["providers"]

PY = sys.executable
# Children that need no otel-tokens of their own run with -S: no site, so no start-up hook
# (run sets OTEL_TOKENS_ENABLED=true for its child, and starting otel-tokens takes seconds).
PYS = [PY, "-S"]
PRINT_ENV = (
    "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    "('OTEL_TOKENS_ENABLED', 'TRACEPARENT', 'BAGGAGE', 'OTEL_TOKENS_PARENT', 'OTEL_TOKENS_TASK', "
    "'OTEL_TOKENS_TASK_ID', "
    "'OTEL_TOKENS_TASK_SIZE', 'OTEL_TOKENS_USER', 'OTEL_TOKENS_TEAM')}))"
)


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("pass", 0, n.OUTCOME_SUCCESS),
        ("import sys; sys.exit(3)", 3, n.OUTCOME_FAILURE),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 128 + signal.SIGTERM, n.OUTCOME_FAILURE),
    ],
)
def test_exit_status_is_the_outcome(providers: Providers, code: str, status: int, outcome: str) -> None:
    rc = run.main(
        ["--task", "job", "--", *PYS, "-c", code], tracer_provider=providers.tp, meter_provider=providers.mp
    )
    assert rc == status
    attrs = providers.span("invoke_workflow job").attributes or {}
    assert (attrs[n.TASK_OUTCOME], attrs[n.PROCESS_EXIT_CODE]) == (outcome, status)
    ((point_attrs, point),) = providers.points(n.M_TASKS)
    assert (point_attrs[n.TASK_NAME], point_attrs[n.TASK_OUTCOME], point.value) == ("job", outcome, 1)


def test_command_not_found(providers: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    rc = run.main(["--", "no-such-command-xyz"], tracer_provider=providers.tp, meter_provider=providers.mp)
    assert rc == 127
    assert capsys.readouterr().err == "otel-tokens run: command not found: no-such-command-xyz\n"
    attrs = providers.span("invoke_workflow no-such-command-xyz").attributes or {}
    assert attrs[n.TASK_OUTCOME] == n.OUTCOME_FAILURE


def test_no_command(providers: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["--task", "x"], tracer_provider=providers.tp, meter_provider=providers.mp) == 2
    assert "no command given" in capsys.readouterr().err
    assert providers.spans() == []


def test_child_gets_carriers_and_task_variables(
    providers: Providers, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(n.ENV_ENABLED, raising=False)
    monkeypatch.setenv(n.ENV_TEAM, "from-env")
    rc = run.main(
        ["--task", "nightly", "--size", "L", "--user", "ci-bot", "--id", "N-1", "--", *PYS, "-c", PRINT_ENV],
        tracer_provider=providers.tp,
        meter_provider=providers.mp,
    )
    assert rc == 0
    seen = json.loads(capfd.readouterr().out)
    span = providers.span("invoke_workflow nightly")
    sc = span.context
    assert seen == {
        "OTEL_TOKENS_ENABLED": "true",
        "TRACEPARENT": f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}",
        "BAGGAGE": None,
        "OTEL_TOKENS_PARENT": '{"otel_tokens.task.name":"nightly","otel_tokens.task.id":"N-1",'
        '"otel_tokens.task.size":"L","user.id":"ci-bot","otel_tokens.team":"from-env"}',
        "OTEL_TOKENS_TASK": "nightly",
        "OTEL_TOKENS_TASK_ID": "N-1",
        "OTEL_TOKENS_TASK_SIZE": "L",
        "OTEL_TOKENS_USER": "ci-bot",
        "OTEL_TOKENS_TEAM": "from-env",
    }


@pytest.mark.parametrize(
    ("argv", "env_task", "name"),
    [
        (["--", *PYS, "-c", "pass"], None, Path(PY).name),
        (["--", *PYS, "-c", "pass"], "from-env", "from-env"),
        (["--task", "flag", "--", *PYS, "-c", "pass"], "from-env", "flag"),
        ([*PYS, "-c", "pass"], None, Path(PY).name),  # "--" is optional when unambiguous
    ],
)
def test_task_name(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, argv: list[str], env_task: str | None, name: str
) -> None:
    if env_task:
        monkeypatch.setenv(n.ENV_TASK, env_task)
    else:
        monkeypatch.delenv(n.ENV_TASK, raising=False)
    assert run.main(argv, tracer_provider=providers.tp, meter_provider=providers.mp) == 0
    assert [s.name for s in providers.spans()] == [f"invoke_workflow {name}"]


CHILD = """
from decimal import Decimal
from otel_tokens.attribution import context
from otel_tokens.record import CallRecord, Usage
context.current_scope().add_call(
    CallRecord("openai", "chat", "gpt-4o", usage=Usage(1000, 100), usage_reported=True), Decimal("0.0125")
)
"""


@pytest.mark.slow
def test_python_children_report_back_through_the_start_up_hook(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The child runs with OTEL_TOKENS_ENABLED (set by run): the .pth hook starts otel-tokens,
    which builds the task from the carriers and reports the child's totals at exit."""
    monkeypatch.setenv(n.ENV_STORE, str(tmp_path / "store.db"))
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(var, raising=False)
    script = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {CHILD!r}], check=True)\n{CHILD}"
    rc = run.main(
        ["--task", "tree", "--", PY, "-c", script], tracer_provider=providers.tp, meter_provider=providers.mp
    )
    assert rc == 0
    attrs = providers.span("invoke_workflow tree").attributes or {}
    # the child and the grandchild each made one call
    assert (attrs[n.TASK_COST], attrs[n.TASK_LLM_CALLS], attrs[n.TASK_INPUT_TOKENS]) == (
        float(Decimal("0.025")),
        2,
        2000,
    )


def test_sigint_sent_to_run_reaches_the_command(tmp_path: Path) -> None:
    """A supervisor (no terminal) interrupts `otel-tokens run`: the command gets the SIGINT,
    once, and its exit status is run's. It used to be swallowed while the command ran on."""
    import subprocess

    from tests.store_helpers import REPO, cli_env

    child = (
        "import signal, sys, time\n"
        "def stop(*_):\n    print('interrupted', flush=True); sys.exit(3)\n"
        "signal.signal(signal.SIGINT, stop)\nprint('ready', flush=True)\ntime.sleep(60)\nsys.exit(9)\n"
    )
    env = cli_env(OTEL_TOKENS_STORE=str(tmp_path / "store.db"))
    proc = subprocess.Popen(
        [PY, "-m", "otel_tokens", "run", "--task", "sig", "--", *PYS, "-c", child],
        stdout=subprocess.PIPE, text=True, env=env, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
    assert rc == 3
    assert rest.count("interrupted") == 1
