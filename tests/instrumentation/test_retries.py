"""The SDK retry hooks, driven by the real openai/anthropic clients against the fake server.

No instrumentation here: the hooks are patched alone and each call runs inside a bare
`callstate` call, so what is checked is exactly what the hooks report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from otel_tokens.instrumentation import retries
from otel_tokens.telemetry import callstate
from otel_tokens.telemetry.callstate import RetryAttempt

MSGS = [{"role": "user", "content": "hello"}]


@pytest.fixture
def hooked() -> Iterator[None]:
    assert retries.patch_openai() and retries.patch_anthropic()
    assert retries.patch_openai()  # idempotent
    try:
        yield
    finally:
        retries.unpatch_openai()
        retries.unpatch_anthropic()


def call(fake: Any, sdk: str, is_async: bool, **client_kw: Any) -> list[RetryAttempt]:
    kw: dict[str, Any] = {"api_key": "sk-test", "max_retries": 2, **client_kw}
    if sdk == "openai":
        cls: Any = openai.AsyncOpenAI if is_async else openai.OpenAI
        client = cls(base_url=fake.openai_base_url, **kw)

        def request() -> Any:
            return client.chat.completions.create(model="gpt-4o", messages=MSGS)
    else:
        cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        client = cls(base_url=fake.anthropic_base_url, **kw)

        def request() -> Any:
            return client.messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS)

    async def arun() -> list[RetryAttempt]:
        state, token = callstate.enter_call()
        try:
            await request()
        finally:
            callstate.exit_call(token)
        return list(state.retries)

    if is_async:
        return asyncio.run(arun())
    state, token = callstate.enter_call()
    try:
        request()
    finally:
        callstate.exit_call(token)
    return list(state.retries)


SDKS = [(sdk, a) for sdk in ("openai", "anthropic") for a in (False, True)]


@pytest.mark.parametrize(("sdk", "is_async"), SDKS)
@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ([], []),
        ([Reply.error(429, retry_after=0.05)], [RetryAttempt(n.RETRY_RATE_LIMIT, 429, 0.05)]),
        (
            [Reply.error(503, retry_after=0.02), Reply.error(500, retry_after=0.01)],
            [RetryAttempt(n.RETRY_SERVER_ERROR, 503, 0.02), RetryAttempt(n.RETRY_SERVER_ERROR, 500, 0.01)],
        ),
        ([Reply.error(408, retry_after=0.01)], [RetryAttempt(n.RETRY_TIMEOUT, 408, 0.01)]),
        ([Reply.error(409, retry_after=0.01)], [RetryAttempt(n.RETRY_OTHER, 409, 0.01)]),
    ],
)
def test_each_failed_attempt_is_reported(
    hooked: None, fake: Any, sdk: str, is_async: bool, replies: list[Reply], expected: list[RetryAttempt]
) -> None:
    fake.enqueue(*replies, Reply.ok())
    assert call(fake, sdk, is_async) == expected
    assert fake.pending == 0


@pytest.mark.parametrize(("sdk", "is_async"), SDKS)
def test_timeout_is_reported_with_the_backoff_the_sdk_chose(
    hooked: None, fake: Any, sdk: str, is_async: bool
) -> None:
    fake.enqueue(Reply.ok(latency=1.0), Reply.ok())
    (attempt,) = call(fake, sdk, is_async, timeout=0.2)
    # no retry-after: exponential back-off 0.5 s x jitter in [0.75, 1]
    assert (attempt.reason, attempt.status_code) == (n.RETRY_TIMEOUT, None)
    assert 0.375 <= attempt.wait_s <= 0.5


def test_connection_error_is_reported() -> None:
    retries.patch_openai()
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=1)
    state, token = callstate.enter_call()
    try:
        with pytest.raises(openai.APIConnectionError):  # a loopback port nobody listens on
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
    finally:
        callstate.exit_call(token)
        retries.unpatch_openai()
    (attempt,) = state.retries
    assert (attempt.reason, attempt.status_code) == (n.RETRY_CONNECTION, None)
    assert 0.375 <= attempt.wait_s <= 0.5


def test_outside_an_instrumented_call_nothing_is_recorded(hooked: None, fake: Any) -> None:
    fake.enqueue(Reply.error(429, retry_after=0.01), Reply.ok())
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=2)
    client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert callstate.current_call() is None and fake.pending == 0


def test_unpatch_restores_the_sdk(fake: Any) -> None:
    from openai import _base_client as base

    original = base.SyncAPIClient.__dict__["_sleep_for_retry"]
    retries.patch_openai()
    assert base.SyncAPIClient.__dict__["_sleep_for_retry"] is not original
    retries.unpatch_openai()
    retries.unpatch_openai()
    assert base.SyncAPIClient.__dict__["_sleep_for_retry"] is original
    fake.enqueue(Reply.error(429, retry_after=0.01), Reply.ok())
    assert call(fake, "openai", False) == []


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (429, None, n.RETRY_RATE_LIMIT),
        (529, None, n.RETRY_SERVER_ERROR),
        (408, None, n.RETRY_TIMEOUT),
        (409, None, n.RETRY_OTHER),
        (None, TimeoutError(), n.RETRY_TIMEOUT),
        (None, ConnectionResetError(), n.RETRY_CONNECTION),
        (None, None, n.RETRY_OTHER),
    ],
)
def test_classify(status: int | None, error: BaseException | None, reason: str) -> None:
    assert retries.classify(status, error) == reason
