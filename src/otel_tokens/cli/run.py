"""``otel-tokens run [--task NAME] [--size S] [--user U] [--team T] [--id ID] -- COMMAND...``

Runs any command as a task: opens the task span, starts the command with the trace and task
carriers (``TRACEPARENT``, ``TRACESTATE``, ``OTEL_TOKENS_PARENT``), ``OTEL_TOKENS_TASK*`` /
``OTEL_TOKENS_USER`` / ``OTEL_TOKENS_TEAM`` and ``OTEL_TOKENS_ENABLED=true`` in its
environment, waits, records the exit status as the task outcome (``success`` on 0, else
``failure``) and returns it (128+N when the command died of signal N). Python processes
under it report their LLM totals back, so the task span's rollup covers the whole tree.

A coding-agent command (``claude``, ``codex``, ``gemini``, also through ``npx``) gets its own
telemetry switched on for the run (`otel_tokens.agents.launch`) with the task's attributes in
``OTEL_RESOURCE_ATTRIBUTES``. With no OTLP endpoint configured (the embedded default), a
loopback receiver runs for the command's lifetime and records each agent API call as an LLM
call of the task; a Claude Code or Gemini CLI started deeper down (by a script or a Python
agent) is pointed at it too. With an endpoint, the agent exports there itself (the team
collector turns its per-call logs into metrics).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from opentelemetry import metrics, trace

from otel_tokens import names as n
from otel_tokens.agents.launch import configure, configure_descendants, detect
from otel_tokens.agents.receiver import AgentReceiver
from otel_tokens.attribution.propagation import child_environ, flush
from otel_tokens.attribution.scopes import discard_environment_task, task
from otel_tokens.cli.oneline import OneLineParser
from otel_tokens.guard import internal_error


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="otel-tokens run",
        description="Run a command as an otel-tokens task: LLM calls in it and its children roll up into it.",
    )
    p.add_argument("--task", help=f"task name (default: ${n.ENV_TASK}, else the command's name)")
    p.add_argument("--size", help=f"task size class, e.g. S, M, L (default: ${n.ENV_TASK_SIZE})")
    p.add_argument("--user", help=f"user id (default: ${n.ENV_USER})")
    p.add_argument("--team", help=f"team (default: ${n.ENV_TEAM})")
    p.add_argument("--id", help=f"task id (default: ${n.ENV_TASK_ID}, else a fresh one)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    return p


def _configure_telemetry() -> None:
    try:
        from otel_tokens.distro.bootstrap import configure_providers

        configure_providers()
    except Exception as exc:
        internal_error("run.configure", exc)


# Task attributes an agent gets as resource attributes (bounded names and ids alike: the
# collector keeps ids off metrics).
_RESOURCE_KEYS = (
    n.TASK_NAME, n.TASK_ID, n.TASK_SIZE, n.USER_ID, n.TEAM, n.TRIGGER, n.CICD_PIPELINE_NAME,
    n.CICD_PIPELINE_RUN_ID, n.CICD_PIPELINE_TASK_NAME, n.VCS_REPOSITORY_URL_FULL, n.VCS_REF_HEAD_NAME,
)  # fmt: skip


def _start_receiver(
    tracer_provider: trace.TracerProvider | None, meter_provider: metrics.MeterProvider | None
) -> AgentReceiver | None:
    try:
        from otel_tokens.telemetry.recorder import Recorder

        recorder = Recorder(tracer_provider, meter_provider)
        gate = None
        if os.environ.get(n.ENV_BUDGETS):  # agents' calls count against the budgets too
            from otel_tokens.budgets.gate import gate_from_env

            gate = gate_from_env(lambda: recorder.pricer, recorder.meter)
        return AgentReceiver(recorder, gate=gate).start()
    except Exception as exc:
        internal_error("run.agent_receiver", exc)
        return None


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _ctrl_c_reached_it(proc: subprocess.Popen[Any]) -> bool:
    """True when a SIGINT came from our terminal, which sent it to the whole foreground
    process group, the command included (forwarding it would be a second Ctrl-C)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:  # no controlling terminal: a supervisor or a script sent it to us alone
        return False
    try:
        group = os.getpgrp()
        return os.tcgetpgrp(fd) == group and os.getpgid(proc.pid) == group
    except OSError:
        return False
    finally:
        os.close(fd)


def _wait(proc: subprocess.Popen[Any]) -> int:
    """Wait for the command, forwarding SIGTERM, SIGHUP and SIGINT (a Ctrl-C at our terminal
    reaches the command by itself, so that one is not sent twice)."""
    forwarded = [signal.SIGTERM, signal.SIGINT]
    if hasattr(signal, "SIGHUP"):
        forwarded.append(signal.SIGHUP)

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _ctrl_c_reached_it(proc):
            return
        try:
            proc.send_signal(signum)
        except OSError:  # it has just exited
            pass

    previous = {}
    for sig in forwarded:
        try:
            previous[sig] = signal.signal(sig, forward)
        except ValueError:  # not the main thread
            break
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue  # the command got SIGINT too; its exit status decides
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(
    argv: Sequence[str],
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> int:
    """Run the command as a task and return its exit status. Telemetry goes to the given
    providers, else to the global ones (configured from the environment when unset)."""
    args = _parser().parse_args(list(argv))
    command: list[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "otel-tokens run: no command given; usage: otel-tokens run [--task NAME] -- COMMAND...",
            file=sys.stderr,
        )
        return 2
    discard_environment_task()  # the start-up hook saw OTEL_TOKENS_TASK too: this task replaces it
    env = os.environ
    name = args.task or env.get(n.ENV_TASK) or os.path.basename(command[0])
    if tracer_provider is None and meter_provider is None:
        _configure_telemetry()
    with task(
        name,
        id=args.id or env.get(n.ENV_TASK_ID) or None,
        size=args.size or env.get(n.ENV_TASK_SIZE) or None,
        user=args.user or env.get(n.ENV_USER) or None,
        team=args.team or env.get(n.ENV_TEAM) or None,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    ) as t:
        child = child_environ() or dict(os.environ)
        attrs = t.scope.span_attributes if t.scope is not None else {}
        for var, key in (
            (n.ENV_TASK, n.TASK_NAME),
            (n.ENV_TASK_ID, n.TASK_ID),
            (n.ENV_TASK_SIZE, n.TASK_SIZE),
            (n.ENV_USER, n.USER_ID),
            (n.ENV_TEAM, n.TEAM),
        ):
            if key in attrs:
                child[var] = str(attrs[key])
        if child.get(n.ENV_ENABLED, "").strip().lower() not in ("1", "true", "yes", "on"):
            child[n.ENV_ENABLED] = "true"
        receiver: AgentReceiver | None = None
        agent, _ = detect(command)
        from otel_tokens.distro.bootstrap import otlp_configured

        if not otlp_configured(child):  # the embedded default: agents' calls come to us
            receiver = _start_receiver(tracer_provider, meter_provider)
        if agent is not None:
            resource = {k: str(attrs[k]) for k in _RESOURCE_KEYS if k in attrs}
            launch = configure(
                command, child, endpoint=receiver.endpoint if receiver else None, resource=resource
            )
            command, child = launch.command, launch.env
        elif receiver is not None:
            child = configure_descendants(child, receiver.endpoint)
        try:
            proc = subprocess.Popen(command, env=child)
        except FileNotFoundError:
            print(f"otel-tokens run: command not found: {command[0]}", file=sys.stderr)
            status = 127
        except PermissionError:
            print(f"otel-tokens run: permission denied: {command[0]}", file=sys.stderr)
            status = 126
        else:
            status = _exit_status(_wait(proc))
        finally:
            if receiver is not None:
                try:
                    receiver.stop()
                except Exception as exc:
                    internal_error("run.agent_receiver", exc)
        t.set_outcome(n.OUTCOME_SUCCESS if status == 0 else n.OUTCOME_FAILURE)
        t.set_attribute(n.PROCESS_EXIT_CODE, status)
    flush(
        tracer_provider or trace.get_tracer_provider(),
        meter_provider or metrics.get_meter_provider(),
        where="run.flush",
    )
    return status
