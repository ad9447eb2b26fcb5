"""Each agent's per-call log record as a `CallRecord`, normalised to the package's convention.

* Claude Code, ``event.name=api_request``: input = uncached ``input_tokens`` +
  ``cache_read_tokens`` + ``cache_creation_tokens``; output = ``output_tokens``; its own
  ``cost_usd`` is kept apart.
* Codex, ``event.name=codex.sse_event`` with ``event.kind=response.completed`` and token
  counts: input = ``input_token_count`` (total), cache = ``cached_token_count`` and
  ``cache_write_token_count``; output = ``output_token_count`` (includes reasoning).
* Gemini CLI, ``event.name=gemini_cli.api_response``: input = ``input_token_count`` (total,
  cache = ``cached_content_token_count``); output = ``output_token_count`` +
  ``thoughts_token_count``.

Counts arrive as ints or strings (Codex mixes both); anything unreadable counts as absent.
Pure functions: no I/O, never raise on odd input (a record that is not a call gives None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from otel_tokens import names as n
from otel_tokens.agents.otlp import LogRecord, Value
from otel_tokens.record import CallRecord, normalised_usage


@dataclass(frozen=True, slots=True)
class AgentCall:
    """One API call an agent made: the record plus what only the agent knows."""

    source: str
    record: CallRecord
    end_ns: int
    duration_s: float | None
    agent_cost_usd: float | None = None
    session_id: str | None = None


def _count(value: Value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Value) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_name(log: LogRecord) -> str:
    name = log.attributes.get("event.name")
    if isinstance(name, str) and name:
        return name
    return log.body if isinstance(log.body, str) else ""


def _duration(attrs: Mapping[str, Value]) -> float | None:
    ms = _number(attrs.get("duration_ms"))
    return ms / 1000.0 if ms is not None and ms >= 0 else None


_CLAUDE_PROVIDERS = {"bedrock": n.PROVIDER_AWS_BEDROCK, "vertex": n.PROVIDER_GCP_VERTEX_AI}


def claude(log: LogRecord) -> AgentCall | None:
    a = log.attributes
    if _event_name(log) not in ("api_request", "claude_code.api_request"):
        return None
    cache_read = _count(a.get("cache_read_tokens")) or 0
    cache_write = _count(a.get("cache_creation_tokens")) or 0
    uncached = _count(a.get("input_tokens"))
    output = _count(a.get("output_tokens"))
    if uncached is None and output is None:
        return None
    provider = _CLAUDE_PROVIDERS.get(str(a.get("anthropic.provider") or "").lower(), n.PROVIDER_ANTHROPIC)
    record = CallRecord(
        provider=provider,
        operation=n.OP_CHAT,
        request_model=_text(a.get("model")),
        response_id=_text(a.get("request_id")),
        stream=True,
    ).with_usage(
        normalised_usage(
            input_tokens=(uncached or 0) + cache_read + cache_write,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
    )
    return AgentCall(
        n.SOURCE_CLAUDE_CODE,
        record,
        log.time_ns,
        _duration(a),
        agent_cost_usd=_number(a.get("cost_usd")),
        session_id=_text(a.get("session.id")),
    )


def codex(log: LogRecord, duration_s: float | None = None) -> AgentCall | None:
    a = log.attributes
    if _event_name(log) != "codex.sse_event" or a.get("event.kind") != "response.completed":
        return None
    total_in = _count(a.get("input_token_count"))
    if total_in is None:
        return None  # the second response.completed record of a call carries no counts
    record = CallRecord(
        provider=n.PROVIDER_OPENAI,
        operation=n.OP_CHAT,
        request_model=_text(a.get("model")) or _text(a.get("slug")),
        stream=True,
    ).with_usage(
        normalised_usage(
            input_tokens=total_in,
            output_tokens=_count(a.get("output_token_count")),
            cache_read_tokens=_count(a.get("cached_token_count")),
            cache_write_tokens=_count(a.get("cache_write_token_count")),
            reasoning_tokens=_count(a.get("reasoning_token_count")),
        )
    )
    return AgentCall(
        n.SOURCE_CODEX, record, log.time_ns, duration_s, session_id=_text(a.get("conversation.id"))
    )


def codex_request_duration(log: LogRecord) -> tuple[str, float] | None:
    """(conversation id, seconds) of a ``codex.api_request`` log of the Responses endpoint."""
    a = log.attributes
    if _event_name(log) != "codex.api_request" or "responses" not in str(a.get("endpoint") or ""):
        return None
    seconds = _duration(a)
    conversation = _text(a.get("conversation.id")) or ""
    return (conversation, seconds) if seconds is not None else None


def gemini(log: LogRecord) -> AgentCall | None:
    a = log.attributes
    if _event_name(log) != "gemini_cli.api_response":
        return None
    total_in = _count(a.get("input_token_count"))
    output = _count(a.get("output_token_count"))
    if total_in is None and output is None:
        return None
    thoughts = _count(a.get("thoughts_token_count")) or 0
    status = _count(a.get("status_code"))
    record = CallRecord(
        provider=n.PROVIDER_GCP_GEMINI,
        operation=n.OP_CHAT,
        request_model=_text(a.get("model")),
        stream=True,
        error_type=str(status) if status is not None and status >= 400 else None,
    ).with_usage(
        normalised_usage(
            input_tokens=total_in,
            output_tokens=(output or 0) + thoughts,
            cache_read_tokens=_count(a.get("cached_content_token_count")),
            reasoning_tokens=thoughts,
        )
    )
    return AgentCall(
        n.SOURCE_GEMINI_CLI, record, log.time_ns, _duration(a), session_id=_text(a.get("session.id"))
    )


class Normaliser:
    """Turns a stream of log records from any of the agents into `AgentCall`s.

    Stateful only for Codex, whose request duration is on a separate log record that
    precedes the usage record of the same conversation.
    """

    def __init__(self) -> None:
        self._codex_durations: dict[str, float] = {}

    def calls(self, logs: list[LogRecord]) -> list[AgentCall]:
        out: list[AgentCall] = []
        for log in logs:
            service = str(log.resource.get("service.name") or "")
            got: AgentCall | None
            if service.startswith("claude") or log.scope.startswith("com.anthropic.claude_code"):
                got = claude(log)
            elif service.startswith("codex"):
                pair = codex_request_duration(log)
                if pair is not None:
                    self._codex_durations[pair[0]] = pair[1]
                    continue
                conversation = _text(log.attributes.get("conversation.id")) or ""
                got = codex(log, self._codex_durations.get(conversation))
                if got is not None:
                    self._codex_durations.pop(conversation, None)
            elif service.startswith("gemini"):
                got = gemini(log)
            else:
                got = claude(log) or codex(log) or gemini(log)
            if got is not None:
                out.append(got)
        return out
