"""A fake OpenAI- and Anthropic-compatible LLM server on loopback, for demos and tests.

Speaks the providers' wire formats (JSON and SSE) from scripted replies or recorded
cassettes. Stands alone: imports nothing else of otel_tokens.

>>> with FakeLLM() as fake:                                       # doctest: +SKIP
...     fake.enqueue(Reply.ok(input_tokens=100, output_tokens=20, cache_read=64))
...     openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test").chat.completions.create(...)
"""

from __future__ import annotations

from otel_tokens.fakellm.cassettes import CassetteError, load_cassette
from otel_tokens.fakellm.replies import RecordedExchange, Reply, reply_from_spec
from otel_tokens.fakellm.server import REPLY_HEADER, FakeLLM, ReceivedRequest
from otel_tokens.fakellm.wire import default_reply

__all__ = [
    "REPLY_HEADER",
    "CassetteError",
    "FakeLLM",
    "ReceivedRequest",
    "RecordedExchange",
    "Reply",
    "default_reply",
    "load_cassette",
    "reply_from_spec",
]
