"""Recognising agent commands and configuring their telemetry; the user's settings win."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_tokens import names as n
from otel_tokens.agents.launch import configure, detect, resource_attributes

RES = {n.TASK_NAME: "fix flaky,test", n.TASK_ID: "t-1", n.USER_ID: "alice"}


@pytest.mark.parametrize(
    ("command", "agent", "at"),
    [
        (["claude", "-p", "hi"], n.SOURCE_CLAUDE_CODE, 0),
        (["/opt/bin/claude.exe", "-p", "hi"], n.SOURCE_CLAUDE_CODE, 0),
        (["codex", "exec", "hi"], n.SOURCE_CODEX, 0),
        (["gemini", "-p", "hi"], n.SOURCE_GEMINI_CLI, 0),
        (["npx", "-y", "@openai/codex@0.171.0", "exec", "hi"], n.SOURCE_CODEX, 2),
        (["npx", "@google/gemini-cli", "-p", "x"], n.SOURCE_GEMINI_CLI, 1),
        (["python", "agent.py"], None, -1),
        (["pytest", "claude"], None, -1),
    ],
)
def test_detect(command: list[str], agent: str | None, at: int) -> None:
    assert detect(command) == (agent, at)


def test_resource_attributes_merge_encode_and_keep_users_keys() -> None:
    merged = resource_attributes("service.name=x,otel_tokens.task.name=mine", RES)
    assert merged == "service.name=x,otel_tokens.task.name=mine,otel_tokens.task.id=t-1,user.id=alice"
    assert resource_attributes(None, RES).startswith("otel_tokens.task.name=fix%20flaky%2Ctest,")


def test_claude_embedded() -> None:
    launch = configure(
        ["claude", "-p", "x"],
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        endpoint="http://127.0.0.1:9",
        resource=RES,
    )
    env = launch.env
    assert launch.agent == n.SOURCE_CLAUDE_CODE and launch.command == ["claude", "-p", "x"]
    assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert env["OTEL_LOGS_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"  # our receiver speaks OTLP/HTTP
    assert "otel_tokens.task.id=t-1" in env[n.ENV_RESOURCE_ATTRIBUTES]


def test_claude_collector_users_settings_win() -> None:
    user = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318", "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
            "OTEL_LOGS_EXPORTER": "console"}  # fmt: skip
    env = configure(["claude"], user, endpoint=None, resource=RES).env
    assert env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "0"
    assert env["OTEL_LOGS_EXPORTER"] == "console"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://collector:4318"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"


def test_codex_gets_c_overrides_and_no_config_file_is_written(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text('model = "gpt-5.1-codex"\n')
    launch = configure(
        ["codex", "exec", "hi"], {"CODEX_HOME": str(home)}, endpoint="http://127.0.0.1:9", resource=RES
    )
    assert launch.command == [
        "codex", "-c", 'otel.exporter={otlp-http={endpoint="http://127.0.0.1:9/v1/logs",protocol="binary"}}',
        "-c", "otel.log_user_prompt=false", "exec", "hi",
    ]  # fmt: skip
    assert (home / "config.toml").read_text() == 'model = "gpt-5.1-codex"\n'


def test_codex_collector_exports_every_signal_with_headers(tmp_path: Path) -> None:
    env = {"CODEX_HOME": str(tmp_path), "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318/",
           "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer x"}  # fmt: skip
    cmd = configure(["codex", "exec", "hi"], env, endpoint=None, resource=RES).command
    assert cmd[2] == (
        'otel.exporter={otlp-http={endpoint="https://c:4318/v1/logs",protocol="binary",'
        'headers={"authorization"="Bearer x"}}}'
    )
    assert [c.split("=")[0] for c in cmd[2:8:2]] == [
        "otel.exporter",
        "otel.metrics_exporter",
        "otel.trace_exporter",
    ]


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ("[otel]\nexporter = 'none'\n", []),
        ("otel.exporter = 'none'\n", []),
        ("", ["-c", "otel.exporter=none"]),
    ],
)
def test_codex_users_otel_config_wins(tmp_path: Path, config: str, args: list[str]) -> None:
    (tmp_path / "config.toml").write_text(config)
    command = ["codex", *args, "exec", "hi"]
    launch = configure(command, {"CODEX_HOME": str(tmp_path)}, endpoint="http://127.0.0.1:9", resource=RES)
    assert launch.command == command
    assert "otel_tokens.task.id=t-1" in launch.env[n.ENV_RESOURCE_ATTRIBUTES]


def test_gemini_embedded_and_collector() -> None:
    env = configure(["gemini", "-p", "x"], {}, endpoint="http://127.0.0.1:9", resource=RES).env
    assert env["GEMINI_TELEMETRY_ENABLED"] == "true"
    assert env["GEMINI_TELEMETRY_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert env["GEMINI_TELEMETRY_OTLP_PROTOCOL"] == "http"
    user = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4318", "GEMINI_TELEMETRY_LOG_PROMPTS": "true"}
    env = configure(["gemini"], user, endpoint=None, resource=RES).env
    assert env["GEMINI_TELEMETRY_OTLP_ENDPOINT"] == "https://c:4318"
    assert env["GEMINI_TELEMETRY_LOG_PROMPTS"] == "true"


def test_other_commands_are_untouched() -> None:
    launch = configure(["python", "x.py"], {"A": "1"}, endpoint=None, resource={})
    assert (launch.command, launch.env, launch.agent) == (["python", "x.py"], {"A": "1"}, None)
