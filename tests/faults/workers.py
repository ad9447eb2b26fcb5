"""The calls of the concurrency campaign: each carries its own reply, so its usage is known.

Call ``k`` asks the fake server (by the ``x-fake-reply`` header) for ``tokens(k)``; which SDK,
model and whether it streams follow from ``k`` too, so the expected totals are computed from
the call numbers alone (`expected`), independently of otel-tokens.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from otel_tokens.fakellm import REPLY_HEADER

KEY = "sk-concurrency-SECRET-0a9f3c"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"


def tokens(k: int) -> tuple[int, int]:
    return 50 + k % 97, 5 + k % 13


def is_anthropic(k: int) -> bool:
    return k % 4 >= 2


def is_stream(k: int) -> bool:
    return k % 2 == 1


def _headers(k: int) -> dict[str, str]:
    inp, out = tokens(k)
    spec = {"kind": "ok", "input_tokens": inp, "output_tokens": out, "text": "x", "chunks": 2}
    return {REPLY_HEADER: json.dumps(spec)}


def _messages() -> Any:
    return [{"role": "user", "content": "count"}]


def call_sync(openai_client: Any, anthropic_client: Any, k: int) -> None:
    if is_anthropic(k):
        if is_stream(k):
            with anthropic_client.messages.stream(
                model=ANTHROPIC_MODEL, max_tokens=16, messages=_messages(), extra_headers=_headers(k)
            ) as s:
                s.get_final_message()
        else:
            anthropic_client.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=16, messages=_messages(), extra_headers=_headers(k)
            )
    elif is_stream(k):
        with openai_client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_headers(k),
        ) as stream:
            for _ in stream:
                pass
    else:
        openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=_messages(), extra_headers=_headers(k)
        )


async def call_async(openai_client: Any, anthropic_client: Any, k: int) -> None:
    if is_anthropic(k):
        if is_stream(k):
            async with anthropic_client.messages.stream(
                model=ANTHROPIC_MODEL, max_tokens=16, messages=_messages(), extra_headers=_headers(k)
            ) as s:
                await s.get_final_message()
        else:
            await anthropic_client.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=16, messages=_messages(), extra_headers=_headers(k)
            )
    elif is_stream(k):
        stream = await openai_client.chat.completions.create(
            model=OPENAI_MODEL,
            messages=_messages(),
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_headers(k),
        )
        async with stream:
            async for _ in stream:
                pass
    else:
        await openai_client.chat.completions.create(
            model=OPENAI_MODEL, messages=_messages(), extra_headers=_headers(k)
        )


def process_main(base_url: str, calls: list[int]) -> None:
    """A worker process (spawned, so OTEL_TOKENS_ENABLED starts otel-tokens in it)."""
    import anthropic
    import openai

    oc = openai.OpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    ac = anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0, timeout=120)
    for k in calls:
        call_sync(oc, ac, k)


def expected(calls: list[int]) -> tuple[int, int, Decimal]:
    """(input tokens, output tokens, cost) of the calls, straight from genai-prices."""
    import genai_prices

    inp = out = 0
    cost = Decimal(0)
    for k in calls:
        i, o = tokens(k)
        inp, out = inp + i, out + o
        provider, model = ("anthropic", ANTHROPIC_MODEL) if is_anthropic(k) else ("openai", OPENAI_MODEL)
        usage = genai_prices.Usage(input_tokens=i, output_tokens=o)
        cost += genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return inp, out, cost
