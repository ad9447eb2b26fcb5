"""How each real CLI is run headless against the fake LLM server, and the genai-prices oracle.

Every run scripts two model calls: a tool-use turn (the agent runs the tool) and a final
answer. The oracle prices each reply the fake actually served, with genai-prices directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from otel_tokens.fakellm import Reply
from tests.agents.conftest import agent_bin


@dataclass(frozen=True)
class AgentRun:
    source: str
    command: list[str]
    env: dict[str, str]
    replies: tuple[Reply, ...]


def claude(fake: Any, home: Path) -> AgentRun:
    return AgentRun(
        "claude_code",
        [agent_bin("claude"), "-p", "list the txt files", "--model", "claude-sonnet-4-6"],
        {"ANTHROPIC_BASE_URL": fake.anthropic_base_url, "ANTHROPIC_API_KEY": "sk-test"},
        (
            Reply.ok(
                3000, 40, cache_read=2000, cache_write=500, tool_name="Glob", tool_args='{"pattern":"*.txt"}'
            ),
            Reply.ok(3100, 12, cache_read=2500, text="done"),
        ),
    )


def codex(fake: Any, home: Path) -> AgentRun:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        'model = "gpt-5.1-codex"\nmodel_provider = "fake"\n[model_providers.fake]\nname = "fake"\n'
        f'base_url = "{fake.openai_base_url}"\nenv_key = "OPENAI_API_KEY"\nwire_api = "responses"\n'
    )
    plan = json.dumps({"plan": [{"step": "look", "status": "completed"}]})
    return AgentRun(
        "codex",
        [agent_bin("codex"), "exec", "--skip-git-repo-check", "make a plan"],
        {"CODEX_HOME": str(codex_home), "OPENAI_API_KEY": "sk-test"},
        (
            Reply.ok(5000, 300, cache_read=4096, reasoning=200, tool_name="update_plan", tool_args=plan),
            Reply.ok(5400, 20, cache_read=4864, text="done"),
        ),
    )


def gemini(fake: Any, home: Path) -> AgentRun:
    settings = home / ".gemini"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "settings.json").write_text(
        json.dumps(
            {
                "privacy": {"usageStatisticsEnabled": False},
                "security": {"folderTrust": {"enabled": False}, "auth": {"selectedType": "gemini-api-key"}},
            }
        )
    )
    return AgentRun(
        "gemini_cli",
        [agent_bin("gemini"), "-m", "gemini-2.5-pro", "-p", "list the txt files"],
        {"GOOGLE_GEMINI_BASE_URL": fake.base_url, "GEMINI_API_KEY": "test-key"},
        (
            Reply.ok(
                7000, 130, cache_read=2048, reasoning=100, tool_name="glob", tool_args='{"pattern":"*.txt"}'
            ),
            Reply.ok(7300, 9, text="done"),
        ),
    )


RUNS = {"claude_code": claude, "codex": codex, "gemini_cli": gemini}
_PROVIDER = {"/v1/messages": "anthropic", "/v1/responses": "openai"}


@dataclass(frozen=True)
class Expected:
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost: Decimal


def served(fake: Any) -> list[tuple[str, str, Reply]]:
    """(genai-prices provider, model, reply) of every model call the fake answered."""
    out = []
    for request in fake.requests:
        if request.path in _PROVIDER:
            out.append((_PROVIDER[request.path], request.json["model"], request.reply))
        elif request.path.startswith("/v1beta/models/"):
            out.append(("google", request.path.rsplit("/", 1)[1].split(":")[0], request.reply))
    return out


def oracle(fake: Any) -> Expected:
    import genai_prices

    calls = served(fake)
    cost = Decimal(0)
    for provider, model, reply in calls:
        usage = genai_prices.Usage(
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cache_read_tokens=reply.cache_read or None,
            cache_write_tokens=reply.cache_write or None,
        )
        cost += genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return Expected(
        len(calls),
        sum(r.input_tokens for _, _, r in calls),
        sum(r.output_tokens for _, _, r in calls),
        sum(r.cache_read for _, _, r in calls),
        cost,
    )
