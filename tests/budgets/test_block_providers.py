"""The hard cap's pre-call gate on every SDK beyond openai and anthropic: google-genai, litellm
and boto3 bedrock-runtime, real SDKs over HTTP to the fake server.

A block budget whose limit is below any call's estimate refuses the first call: the SDK call
raises `BudgetExceeded` naming the budget, the fake server receives nothing, and the call's span
says blocked, by which budget, not sent. (`test_block.py` proves the exact boundary on openai
and anthropic; this proves the gate is wired into each other SDK's call path.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

BUDGET = "budgets:\n  - {name: tiny, match: {}, limit_usd: 0.000000001, period: day, action: block}\n"
TEXT = "summarise the build log"


def _gemini(fake: Any, is_async: bool) -> None:
    from google import genai

    client = genai.Client(
        api_key="fake-key", http_options={"base_url": fake.google_base_url, "retry_options": {"attempts": 1}}
    )
    if is_async:
        asyncio.run(client.aio.models.generate_content(model="gemini-2.5-flash", contents=TEXT))
    else:
        client.models.generate_content(model="gemini-2.5-flash", contents=TEXT)


def _litellm(fake: Any, is_async: bool) -> None:
    import litellm

    kwargs: dict[str, Any] = dict(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": TEXT}],
        api_base=fake.openai_base_url,
        api_key="sk-fake",
        num_retries=0,
    )
    if is_async:
        asyncio.run(litellm.acompletion(**kwargs))
    else:
        litellm.completion(**kwargs)


def _bedrock(fake: Any, is_async: bool) -> None:
    from tests.instrumentation.test_core_bedrock import bedrock

    messages = [{"role": "user", "content": [{"text": TEXT}]}]
    bedrock(fake).converse(modelId="anthropic.claude-3-5-sonnet-20241022-v2:0", messages=messages)


CALLS: dict[str, Callable[[Any, bool], None]] = {
    "google_genai": _gemini,
    "litellm": _litellm,
    "bedrock": _bedrock,
}
CASES = [
    ("google_genai", False),
    ("google_genai", True),
    ("litellm", False),
    ("litellm", True),
    ("bedrock", False),  # boto3 has no async client
]


@pytest.mark.parametrize(("sdk", "is_async"), CASES)
def test_a_hard_cap_refuses_the_call_before_it_is_sent(
    sdk: str, is_async: bool, fake: Any, telemetry: Telemetry, use_budgets: Any
) -> None:
    use_budgets(BUDGET)
    fake.enqueue(Reply.ok(input_tokens=20, output_tokens=50))
    with pytest.raises(otel_tokens.BudgetExceeded) as info:
        CALLS[sdk](fake, is_async)
    assert info.value.budget == "tiny" and info.value.estimate_usd > info.value.limit_usd
    assert len(fake.requests) == 0  # never reached the provider
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert (attrs[n.OUTCOME], attrs[n.BUDGET_NAME], attrs[n.COST_STATUS], attrs[n.ERROR_TYPE]) == (
        n.OUTCOME_BLOCKED,
        "tiny",
        n.COST_STATUS_NOT_SENT,
        "BudgetExceeded",
    )
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: n.OUTCOME_BLOCKED, n.BUDGET_NAME: "tiny"}) == 1
