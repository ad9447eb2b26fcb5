"""Recognise a coding-agent command and configure its own telemetry for one run.

`configure(command, env, endpoint=..., resource=...)` returns the command and environment to
start. The user's explicit settings always win: a variable already set is never changed, and
Codex's ``-c otel.*`` overrides are added only when neither the command line nor the user's
``config.toml`` configures ``[otel]`` (we never write that file).

* Claude Code: ``CLAUDE_CODE_ENABLE_TELEMETRY=1``, OTLP logs and metrics over http/protobuf
  (traces too when exporting to a collector, with ``CLAUDE_CODE_ENHANCED_TELEMETRY_BETA``).
* Codex: ``-c otel.exporter=...`` (and metrics/traces for a collector), binary OTLP/HTTP.
* Gemini CLI: ``GEMINI_TELEMETRY_*`` (target local, OTLP over http, prompts not logged).

All three get ``OTEL_RESOURCE_ATTRIBUTES`` with the task's attributes merged in (the user's
keys win), and ``TRACEPARENT`` comes from the run's task span.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from otel_tokens import names as n

_NPX = frozenset({"npx", "bunx", "pnpx", "pnpm", "yarn", "dlx"})
_PROGRAMS = {
    "claude": n.SOURCE_CLAUDE_CODE,
    "claude.exe": n.SOURCE_CLAUDE_CODE,
    "@anthropic-ai/claude-code": n.SOURCE_CLAUDE_CODE,
    "codex": n.SOURCE_CODEX,
    "@openai/codex": n.SOURCE_CODEX,
    "gemini": n.SOURCE_GEMINI_CLI,
    "@google/gemini-cli": n.SOURCE_GEMINI_CLI,
}


@dataclass(frozen=True, slots=True)
class Launch:
    """What to start: the (possibly extended) command, its environment, the agent if any."""

    command: list[str]
    env: dict[str, str]
    agent: str | None


def _program(arg: str) -> str:
    name = os.path.basename(arg) if not arg.startswith("@") else arg
    return re.sub(r"@[0-9][^/]*$", "", name)  # "@openai/codex@0.171.0" -> "@openai/codex"


def detect(command: Sequence[str]) -> tuple[str | None, int]:
    """(agent source name, index of the agent's program in the command) or (None, -1)."""
    for index, arg in enumerate(command):
        program = _program(arg)
        if program in _PROGRAMS:
            return _PROGRAMS[program], index
        if index == 0 and program in _NPX:
            continue
        if index > 0 and (arg.startswith("-") or arg in ("exec", "dlx")):
            continue
        break
    return None, -1


def _encode(value: str) -> str:
    return quote(value, safe="")


def resource_attributes(existing: str | None, ours: Mapping[str, str]) -> str:
    """``OTEL_RESOURCE_ATTRIBUTES`` with our keys added; keys already there are kept as they are."""
    parts = [p for p in (existing or "").split(",") if p.strip()]
    have = {p.split("=", 1)[0].strip() for p in parts if "=" in p}
    parts += [f"{k}={_encode(v)}" for k, v in ours.items() if k not in have and v != ""]
    return ",".join(parts)


def _logs_endpoint(env: Mapping[str, str], endpoint: str | None, signal: str) -> str | None:
    """The OTLP/HTTP URL for one signal: ours (embedded), else the user's OTEL_* settings."""
    if endpoint is not None:
        return f"{endpoint.rstrip('/')}/v1/{signal}"
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/{signal}" if base else None


def _setdefault(env: dict[str, str], values: Mapping[str, str]) -> None:
    for key, value in values.items():
        if not env.get(key):
            env[key] = value


def _claude(env: dict[str, str], endpoint: str | None) -> None:
    values = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORT_INTERVAL": "1000",
        "OTEL_METRIC_EXPORT_INTERVAL": "10000",
    }
    if endpoint is not None:
        # embedded: only our receiver, protobuf; the user's OTLP settings are for other programs
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        for key in ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
            env.pop(key, None)
    else:
        values.update(
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            }
        )
    _setdefault(env, values)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _codex_headers(env: Mapping[str, str]) -> str:
    pairs = [p.split("=", 1) for p in (env.get("OTEL_EXPORTER_OTLP_HEADERS") or "").split(",") if "=" in p]
    if not pairs:
        return ""
    inner = ",".join(f"{_toml_string(k.strip())}={_toml_string(v.strip())}" for k, v in pairs)
    return f",headers={{{inner}}}"


def _codex_user_configured(command: Sequence[str], env: Mapping[str, str]) -> bool:
    for i, arg in enumerate(command):
        value = arg[len("--config=") :] if arg.startswith("--config=") else None
        if value is None and arg in ("-c", "--config") and i + 1 < len(command):
            value = command[i + 1]
        if value is None and arg.startswith("-c") and len(arg) > 2:
            value = arg[2:]
        if value is not None and value.lstrip().startswith("otel"):
            return True
    home = Path(env.get("CODEX_HOME") or Path(env.get("HOME") or "~").expanduser() / ".codex")
    try:
        text = (home / "config.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return re.search(r"^\s*(\[otel[\].]|otel\s*[.=])", text, re.MULTILINE) is not None


def _codex(command: list[str], at: int, env: dict[str, str], endpoint: str | None) -> list[str]:
    if _codex_user_configured(command, env):
        return command
    overrides: list[str] = []
    signals = (("exporter", "logs"),) if endpoint is not None else (
        ("exporter", "logs"), ("metrics_exporter", "metrics"), ("trace_exporter", "traces"),
    )  # fmt: skip
    headers = "" if endpoint is not None else _codex_headers(env)
    for key, signal in signals:
        url = _logs_endpoint(env, endpoint, signal)
        if url is None:
            continue
        overrides += [
            "-c",
            f'otel.{key}={{otlp-http={{endpoint={_toml_string(url)},protocol="binary"{headers}}}}}',
        ]
    if not overrides:
        return command
    overrides += ["-c", "otel.log_user_prompt=false"]
    return [*command[: at + 1], *overrides, *command[at + 1 :]]


def _gemini(env: dict[str, str], endpoint: str | None) -> None:
    url = endpoint if endpoint is not None else env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not url:
        return
    values = {
        "GEMINI_TELEMETRY_ENABLED": "true",
        "GEMINI_TELEMETRY_TARGET": "local",
        "GEMINI_TELEMETRY_OTLP_ENDPOINT": url,
        "GEMINI_TELEMETRY_OTLP_PROTOCOL": "http",
        "GEMINI_TELEMETRY_LOG_PROMPTS": "false",
    }
    if endpoint is not None:
        env.update(values)
    else:
        _setdefault(env, values)


def configure_descendants(env: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """For a command that is not an agent itself (a script, a shell, a Python agent) on the
    embedded default: a Claude Code or Gemini CLI it starts, at any depth, exports its per-call
    logs to our receiver. Logs only, and under the signal-specific variable, so Python children
    still find no OTLP endpoint and write to the store. (Codex takes ``-c`` or its config file,
    never the environment: run it as the command itself.)"""
    out = dict(env)
    _setdefault(
        out,
        {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{endpoint.rstrip('/')}/v1/logs",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
            "OTEL_LOGS_EXPORT_INTERVAL": "1000",
            "GEMINI_TELEMETRY_ENABLED": "true",
            "GEMINI_TELEMETRY_TARGET": "local",
            "GEMINI_TELEMETRY_OTLP_ENDPOINT": endpoint,
            "GEMINI_TELEMETRY_OTLP_PROTOCOL": "http",
            "GEMINI_TELEMETRY_LOG_PROMPTS": "false",
        },
    )
    return out


def configure(
    command: Sequence[str], env: Mapping[str, str], *, endpoint: str | None, resource: Mapping[str, str]
) -> Launch:
    """Configure an agent's telemetry for one run; other commands only get the resource attributes.

    ``endpoint``: the embedded receiver's base URL, or None to export where the user's
    ``OTEL_EXPORTER_OTLP_*`` settings say (a collector).
    """
    out = dict(env)
    cmd = list(command)
    agent, at = detect(cmd)
    if resource:
        out[n.ENV_RESOURCE_ATTRIBUTES] = resource_attributes(out.get(n.ENV_RESOURCE_ATTRIBUTES), resource)
    if agent == n.SOURCE_CLAUDE_CODE:
        _claude(out, endpoint)
    elif agent == n.SOURCE_CODEX:
        cmd = _codex(cmd, at, out, endpoint)
    elif agent == n.SOURCE_GEMINI_CLI:
        _gemini(out, endpoint)
    return Launch(cmd, out, agent)
