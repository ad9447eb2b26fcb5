"""Hard caps before the call: real SDKs over HTTP to the fake server, a per-task block budget.

Each call reserves its upper-bound estimate E and settles to its real cost C, so call k is
admitted exactly when (k-1)*C + E <= limit. With limit = E + 2.5*C the fourth call is the
first that would pass it: it raises BudgetExceeded, and the fake's request log shows it
never arrived. E and C are computed here from genai-prices over the request and the reply.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MSGS = [{"role": "user", "content": "summarise the build log"}]
MAX_TOKENS = 100
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}
REPLY = (20, 50)  # input, output tokens of every answer


def _input_bytes(kwargs: dict[str, Any]) -> int:
    body = {k: v for k, v in kwargs.items() if k not in ("model", "stream")}
    return len(json.dumps(body, ensure_ascii=False).encode())


def _kwargs(provider: str, mode: str) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": MODELS[provider], "messages": MSGS, "max_tokens": MAX_TOKENS}
    if mode == "stream":
        kw["stream"] = True
        if provider == "openai":
            kw["stream_options"] = {"include_usage": True}
    return kw


def _genai_price(provider: str, **usage: int) -> float:
    import genai_prices

    total = genai_prices.calc_price(genai_prices.Usage(**usage), MODELS[provider], provider_id=provider)
    return float(total.total_price)


def _estimate(provider: str, kwargs: dict[str, Any]) -> float:
    """The documented bound: the dearest of uncached, 5-minute and 1-hour cache-write input."""
    inp = _input_bytes(kwargs)
    io = {"input_tokens": inp, "output_tokens": MAX_TOKENS}
    return max(
        _genai_price(provider, **io),
        _genai_price(provider, **io, cache_write_tokens=inp),
        _genai_price(provider, **io, cache_write_tokens=inp, cache_write_1h_tokens=inp),
    )


def _call_sync(fake: Any, provider: str, mode: str) -> None:
    kw = _kwargs(provider, mode)
    if provider == "openai":
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        result = client.chat.completions.create(**kw)
        if mode == "stream":
            for _ in result:
                pass
        return
    ac = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    if mode == "helper":
        with ac.messages.stream(**kw) as stream:
            for _ in stream:
                pass
        return
    result = ac.messages.create(**kw)
    if mode == "stream":
        for _ in result:
            pass


async def _call_async(fake: Any, provider: str, mode: str) -> None:
    kw = _kwargs(provider, mode)
    if provider == "openai":
        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        result = await client.chat.completions.create(**kw)
        if mode == "stream":
            async for _ in result:
                pass
        return
    ac = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    if mode == "helper":
        async with ac.messages.stream(**kw) as stream:
            async for _ in stream:
                pass
        return
    result = await ac.messages.create(**kw)
    if mode == "stream":
        async for _ in result:
            pass


VARIANTS = [
    (provider, mode, is_async)
    for provider, modes in (("openai", ("create", "stream")), ("anthropic", ("create", "stream", "helper")))
    for mode in modes
    for is_async in (False, True)
]


@pytest.mark.parametrize(("provider", "mode", "is_async"), VARIANTS)
def test_a_task_budget_stops_exactly_at_the_call_that_would_pass_it(
    provider: str, mode: str, is_async: bool, fake: Any, telemetry: Telemetry, use_budgets: Any
) -> None:
    e = _estimate(provider, _kwargs(provider, mode if mode != "helper" else "create"))
    c = expected_cost(provider, MODELS[provider], *REPLY)
    assert e > c > 0
    limit = Decimal(repr(e)) + Decimal(repr(c)) * Decimal("2.5")
    use_budgets(
        f"budgets:\n  - name: small-tasks\n    match: {{task_size: S}}\n    limit_usd: {limit}\n"
        "    period: task\n    action: block\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=REPLY[0], output_tokens=REPLY[1]) for _ in range(10)])
    admitted = 0
    with otel_tokens.task("triage", size="S") as task, pytest.raises(otel_tokens.BudgetExceeded) as info:
        for _ in range(10):
            if is_async:
                asyncio.run(_call_async(fake, provider, mode))
            else:
                _call_sync(fake, provider, mode)
            admitted += 1
    assert admitted == 3
    assert len(fake.requests) == 3  # the refused call never reached the provider
    exc = info.value
    assert (exc.budget, exc.scope, exc.period, exc.resets_at) == (
        "small-tasks",
        f"task_id={task.id}",
        "task",
        None,
    )
    assert exc.limit_usd == pytest.approx(float(limit), abs=1e-9)
    assert exc.spent_usd == pytest.approx(3 * c, abs=3e-9)
    assert exc.estimate_usd == pytest.approx(e, abs=1e-9)
    assert "small-tasks" in str(exc) and "raise limit_usd" in str(exc) and "left" in str(exc)

    spans = telemetry.llm_spans()
    assert [s.attributes[n.OUTCOME] for s in spans] == ["success"] * 3 + ["blocked"]
    blocked = spans[-1].attributes
    assert blocked[n.BUDGET_NAME] == "small-tasks"
    assert blocked[n.COST_STATUS] == n.COST_STATUS_NOT_SENT
    assert blocked[n.ERROR_TYPE] == "BudgetExceeded"
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "blocked", n.BUDGET_NAME: "small-tasks"}) == 1
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "success"}) == 3


def test_a_new_task_run_starts_with_the_full_amount(
    fake: Any, telemetry: Telemetry, use_budgets: Any
) -> None:
    e = _estimate("openai", _kwargs("openai", "create"))
    use_budgets(
        f"budgets:\n  - name: per-run\n    match: {{}}\n    limit_usd: {Decimal(repr(e)) * Decimal('1.2')}\n"
        "    period: task\n    action: block\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=REPLY[0], output_tokens=REPLY[1]) for _ in range(3)])
    for _ in range(2):
        with otel_tokens.task("run"):
            _call_sync(fake, "openai", "create")  # fits: nothing spent in this run yet
            with pytest.raises(otel_tokens.BudgetExceeded):
                _call_sync(fake, "openai", "create")
    assert len(fake.requests) == 2
    # outside any task a per-task budget does not apply
    _call_sync(fake, "openai", "create")
    assert len(fake.requests) == 3


def test_a_user_budget_blocks_even_when_the_team_has_money_left_and_vice_versa(
    fake: Any, telemetry: Telemetry, use_budgets: Any, tmp_path: Path
) -> None:
    e = Decimal(repr(_estimate("openai", _kwargs("openai", "create"))))
    c = Decimal(repr(expected_cost("openai", MODELS["openai"], *REPLY)))
    use_budgets(
        "budgets:\n"
        f"  - {{name: alice, match: {{user: alice}}, limit_usd: {e + c / 2}, period: month, action: block}}\n"
        f"  - {{name: search, match: {{team: search}}, limit_usd: {e + c * 3 / 2}, period: month,"
        " action: block}\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=REPLY[0], output_tokens=REPLY[1]) for _ in range(4)])
    with otel_tokens.task("t", user="alice", team="search"):
        _call_sync(fake, "openai", "create")
        with pytest.raises(otel_tokens.BudgetExceeded) as first:
            _call_sync(fake, "openai", "create")
    assert first.value.budget == "alice" and first.value.scope == "user=alice"
    with otel_tokens.task("t", user="bob", team="search"):
        _call_sync(fake, "openai", "create")  # bob has no budget of his own; the team has room
        with pytest.raises(otel_tokens.BudgetExceeded) as second:
            _call_sync(fake, "openai", "create")
    assert second.value.budget == "search" and second.value.scope == "team=search"
    assert len(fake.requests) == 2
