"""Make one case's call through the real SDK the way an app would, and describe what it saw.

The description (`Outcome`) is everything the app can observe: the result (dumped), the type and
message of the exception, every stream item, and every warning raised while calling. Two arms
(with and without otel-tokens) must produce equal outcomes for every case.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

from tests.faults.cases import Case
from tests.faults.rawserver import ARM_HEADER, CASE_HEADER

API_KEY = "sk-fault-campaign-SECRET-4f1c9e2d7b"
PROMPT = "PROMPT-TEXT-never-exported-93b1"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


@dataclass
class Outcome:
    result: str | None = None
    items: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def _dump(obj: Any) -> str:
    name = type(obj).__qualname__
    try:
        if hasattr(obj, "model_dump"):
            data = obj.model_dump(warnings=False)
        else:
            data = obj
        return name + ":" + json.dumps(data, sort_keys=True, default=repr)
    except Exception as exc:  # a dump failure is part of what the app would see
        return f"{name}:<dump failed: {type(exc).__qualname__}>"


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        text += f" [status {exc.status_code}]"
    if cause is not None:
        text += f" <- {type(cause).__qualname__}"
    return _ADDRESS.sub("0x?", text)


@dataclass
class Clients:
    openai: openai.OpenAI
    anthropic: anthropic.Anthropic

    def close(self) -> None:
        self.openai.close()
        self.anthropic.close()


def clients(base_url: str) -> Clients:
    return Clients(
        openai.OpenAI(base_url=base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=10),
        anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=10),
    )


@dataclass
class AsyncClients:
    openai: openai.AsyncOpenAI
    anthropic: anthropic.AsyncAnthropic

    async def close(self) -> None:
        await self.openai.close()
        await self.anthropic.close()


def async_clients(base_url: str) -> AsyncClients:
    return AsyncClients(
        openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=API_KEY, max_retries=0, timeout=10),
        anthropic.AsyncAnthropic(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=10),
    )


def _request(case: Case, arm: str) -> tuple[str, dict[str, Any]]:
    """(method path, kwargs) of the SDK call for a case."""
    headers = {CASE_HEADER: case.id, ARM_HEADER: arm}
    messages = [{"role": "user", "content": PROMPT}]
    stream = case.mode.endswith("_stream")
    mode = case.mode
    if mode.startswith("openai_chat"):
        kwargs: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages}
        if stream:
            kwargs["stream"] = True
            if case.response.status % 2 == 0:  # vary the option deterministically
                kwargs["stream_options"] = {"include_usage": True}
        return "openai.chat.completions.create", kwargs | {"extra_headers": headers}
    if mode.startswith("openai_responses"):
        kwargs = {"model": "gpt-4o-mini", "input": PROMPT} | ({"stream": True} if stream else {})
        return "openai.responses.create", kwargs | {"extra_headers": headers}
    if mode == "openai_embeddings":
        return "openai.embeddings.create", {
            "model": "text-embedding-3-small",
            "input": PROMPT,
            "extra_headers": headers,
        }
    kwargs = {"model": "claude-3-5-haiku-latest", "max_tokens": 64, "messages": messages}
    if mode == "anthropic_stream_helper":
        return "anthropic.messages.stream", kwargs | {"extra_headers": headers}
    kwargs |= {"stream": True} if stream else {}
    return "anthropic.messages.create", kwargs | {"extra_headers": headers}


def _method(root: Any, path: str) -> Any:
    target = root
    for part in path.split("."):
        target = getattr(target, part)
    return target


@contextmanager
def _watch(out: Outcome) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            yield
        except Exception as exc:
            out.error = _describe(exc)
    out.warnings = [f"{w.category.__name__}: {w.message}" for w in seen]


def _consume_sync(case: Case, stream: Any, out: Outcome) -> None:
    how, k = case.consume
    with stream as opened:
        if how == "none":
            return
        for index, item in enumerate(opened):
            if how == "break" and index >= k:
                break
            out.items.append(_dump(item))
        if case.mode == "anthropic_stream_helper" and how == "all":
            out.result = _dump(opened.get_final_message())


def run_case(c: Clients, case: Case, arm: str) -> Outcome:
    out = Outcome()
    path, kwargs = _request(case, arm)
    with _watch(out):
        fn = _method(c, path)
        if case.mode == "anthropic_stream_helper":
            _consume_sync(case, fn(**kwargs), out)
        elif kwargs.get("stream"):
            _consume_sync(case, fn(**kwargs), out)
        else:
            out.result = _dump(fn(**kwargs))
    return out


@asynccontextmanager
async def _awatch(out: Outcome) -> AsyncIterator[None]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            yield
        except Exception as exc:
            out.error = _describe(exc)
    out.warnings = [f"{w.category.__name__}: {w.message}" for w in seen]


async def _consume_async(case: Case, stream: Any, out: Outcome) -> None:
    how, k = case.consume
    async with stream as opened:
        if how == "none":
            return
        index = 0
        async for item in opened:
            if how == "break" and index >= k:
                break
            out.items.append(_dump(item))
            index += 1
        if case.mode == "anthropic_stream_helper" and how == "all":
            out.result = _dump(await opened.get_final_message())


async def run_case_async(c: AsyncClients, case: Case, arm: str) -> Outcome:
    out = Outcome()
    path, kwargs = _request(case, arm)
    async with _awatch(out):
        fn = _method(c, path)
        if case.mode == "anthropic_stream_helper":
            await _consume_async(case, fn(**kwargs), out)
        elif kwargs.get("stream"):
            await _consume_async(case, await fn(**kwargs), out)
        else:
            out.result = _dump(await fn(**kwargs))
    return out


def request_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The outbound headers that must not depend on the arm (volatile ones removed)."""
    volatile = {ARM_HEADER, "x-stainless-read-timeout"}
    return [(k, v) for k, v in headers if k not in volatile]
