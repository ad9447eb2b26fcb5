"""A deterministic generator of hostile LLM responses for the differential fuzzer.

`generate(seed, count)` returns `count` cases, each an endpoint (which SDK call to make and how to
consume it) and a `RawResponse` (the exact bytes the server sends). The same seed always gives
the same cases. Families, weighted so every kind appears hundreds of times in 10,000 cases:

- bodies: valid, truncated, garbage, empty, ``null``/list/number, non-UTF-8 bytes, latin-1;
- token counts: missing, null, 0, negative, huge (2**31 .. 10**30, 2**63), float, NaN, string,
  bool, list, object; unknown fields; empty, null or missing ``choices``/``content``;
- content types: JSON, JSON with charset, text/plain, text/html, event-stream, none;
- status codes 200, 201, 400, 401, 404, 422, 429, 500, 503 with JSON or garbage error bodies;
- SSE: usage chunks with ``choices`` [] / null / missing, duplicated usage chunks, error events
  mid-stream, malformed data lines, comments and pings, CRLF, no ``[DONE]``, unknown events;
- framing: Content-Length, chunked (one chunk per event or random splits), connection close;
  cut at 0, inside a JSON value, right after ``data:``, at an event boundary, before the last
  event, inside a chunk frame.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tests.faults.rawserver import Framing, RawResponse

Mode = Literal[
    "openai_chat",
    "openai_chat_stream",
    "openai_responses",
    "openai_responses_stream",
    "openai_embeddings",
    "anthropic_messages",
    "anthropic_messages_stream",
    "anthropic_stream_helper",
]
MODES: tuple[tuple[Mode, int], ...] = (
    ("openai_chat", 18),
    ("openai_chat_stream", 22),
    ("openai_responses", 6),
    ("openai_responses_stream", 10),
    ("openai_embeddings", 4),
    ("anthropic_messages", 14),
    ("anthropic_messages_stream", 18),
    ("anthropic_stream_helper", 8),
)
STREAMING = frozenset(m for m, _ in MODES if m.endswith("stream") or m.endswith("helper"))

# Consumption: read everything, stop after k items (closing the stream), or never iterate.
Consume = tuple[Literal["all", "break", "none"], int]


@dataclass(frozen=True)
class Case:
    id: str
    mode: Mode
    consume: Consume
    is_async: bool
    kind: str  # short description of the mutation, for reports
    response: RawResponse


MISSING = object()

_TOKEN_VALUES: tuple[Any, ...] = (
    MISSING,
    None,
    0,
    1,
    7,
    123,
    4096,
    -1,
    -(10**6),
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    10**30,
    1.5,
    1e3,
    float("nan"),
    float("inf"),
    "12",
    "abc",
    "",
    True,
    [],
    {},
    [3],
)


def _tokens(rng: random.Random) -> Any:
    # mostly plausible values so usage-bearing paths run; every odd value still appears often
    if rng.random() < 0.45:
        return rng.choice((0, 3, 10, 57, 1234))
    return rng.choice(_TOKEN_VALUES)


def _put(d: dict[str, Any], key: str, value: Any) -> None:
    if value is not MISSING:
        d[key] = value


def _maybe_unknown(rng: random.Random, d: dict[str, Any]) -> None:
    if rng.random() < 0.15:
        d[rng.choice(("x_unknown", "service_tier", "_meta", "obfuscation"))] = rng.choice(
            (1, "x", None, {"nested": [1, 2]}, [])
        )


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not MISSING}
    if isinstance(obj, list):
        return [_clean(v) for v in obj if v is not MISSING]
    return obj


def _dumps(obj: Any) -> bytes:
    return json.dumps(_clean(obj), separators=(",", ":"), allow_nan=True).encode()


def _text(rng: random.Random) -> str:
    return rng.choice(("hi", "hello world", "", "ünïcødé ✓", "line\nbreak", "a" * 50, '"quoted"'))


# --- openai ------------------------------------------------------------------------------


def _openai_usage(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.06:
        return MISSING
    if roll < 0.12:
        return rng.choice((None, "usage", [], 5))
    u: dict[str, Any] = {}
    _put(u, "prompt_tokens", _tokens(rng))
    _put(u, "completion_tokens", _tokens(rng))
    _put(u, "total_tokens", _tokens(rng))
    if rng.random() < 0.4:
        details: Any = {}
        _put(details, "cached_tokens", _tokens(rng))
        if rng.random() < 0.1:
            details = rng.choice((None, "x", []))
        u["prompt_tokens_details"] = details
    if rng.random() < 0.4:
        cdetails: Any = {}
        _put(cdetails, "reasoning_tokens", _tokens(rng))
        if rng.random() < 0.1:
            cdetails = rng.choice((None, 3))
        u["completion_tokens_details"] = cdetails
    _maybe_unknown(rng, u)
    return u


def _model(rng: random.Random, default: str) -> Any:
    return rng.choice((default, default, default, "unknown-model-x", MISSING, None, 42, ""))


def _chat_completion(rng: random.Random) -> Any:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1}
    _put(body, "model", _model(rng, "gpt-4o-mini"))
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": _text(rng)},
        "finish_reason": rng.choice(("stop", "length", None, "tool_calls")),
    }
    choices = rng.choice(([choice], [choice], [choice], [], None, MISSING, [None], [choice, choice], "x"))
    _put(body, "choices", choices)
    _put(body, "usage", _openai_usage(rng))
    _maybe_unknown(rng, body)
    return body


def _chat_chunk(rng: random.Random, delta: dict[str, Any], finish: Any = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1}
    _put(chunk, "model", _model(rng, "gpt-4o-mini"))
    chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return chunk


def _chat_events(rng: random.Random) -> list[Any]:
    events: list[Any] = [_chat_chunk(rng, {"role": "assistant", "content": ""})]
    for _ in range(rng.randint(0, 6)):
        events.append(_chat_chunk(rng, {"content": _text(rng)}))
    events.append(_chat_chunk(rng, {}, rng.choice(("stop", "length", None))))
    usage_chunks = rng.choice((0, 1, 1, 1, 2, 3))
    for _ in range(usage_chunks):
        chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1}
        _put(chunk, "model", _model(rng, "gpt-4o-mini"))
        _put(chunk, "choices", rng.choice(([], [], None, MISSING, [{"index": 0, "delta": {}}])))
        _put(chunk, "usage", _openai_usage(rng))
        _maybe_unknown(rng, chunk)
        events.append(chunk)
    if rng.random() < 0.1:
        events.insert(rng.randint(0, len(events)), {"error": {"message": "boom", "type": "server_error"}})
    if rng.random() < 0.04:
        events.insert(rng.randint(0, len(events)), {"error": rng.choice(({}, "x", {"message": 3}))})
    return events


def _response_object(rng: random.Random, status: str = "completed") -> dict[str, Any]:
    usage: Any = {}
    _put(usage, "input_tokens", _tokens(rng))
    _put(usage, "output_tokens", _tokens(rng))
    _put(usage, "total_tokens", _tokens(rng))
    if rng.random() < 0.5:
        usage["input_tokens_details"] = rng.choice(({"cached_tokens": _tokens(rng)}, None, {}))
    if rng.random() < 0.5:
        usage["output_tokens_details"] = rng.choice(({"reasoning_tokens": _tokens(rng)}, None, {}))
    if rng.random() < 0.1:
        usage = rng.choice((None, MISSING, "x"))
    body: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    message = {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": _text(rng), "annotations": []}],
    }
    _put(body, "output", rng.choice(([message], [message], [], None, MISSING)))
    _put(body, "model", _model(rng, "gpt-4o-mini"))
    _put(body, "usage", usage)
    _maybe_unknown(rng, body)
    return body


def _responses_events(rng: random.Random) -> list[Any]:
    events: list[Any] = [{"type": "response.created", "response": _response_object(rng, "in_progress")}]
    for _ in range(rng.randint(0, 5)):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": _text(rng),
            }
        )
    end = rng.choice(("response.completed", "response.completed", "response.failed", "response.incomplete"))
    events.append({"type": end, "response": _response_object(rng, end.split(".")[1])})
    if rng.random() < 0.15:
        events.append({"type": "response.completed", "response": _response_object(rng)})
    if rng.random() < 0.1:
        events.insert(rng.randint(0, len(events)), {"type": "error", "message": "boom", "code": "x"})
    if rng.random() < 0.05:
        events.insert(rng.randint(0, len(events)), {"type": "response.unknown_event", "x": 1})
    return events


def _embeddings(rng: random.Random) -> Any:
    usage: Any = {}
    _put(usage, "prompt_tokens", _tokens(rng))
    _put(usage, "total_tokens", _tokens(rng))
    if rng.random() < 0.1:
        usage = rng.choice((None, MISSING))
    body: dict[str, Any] = {
        "object": "list",
        "data": rng.choice(([{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}], [], None)),
    }
    _put(body, "model", _model(rng, "text-embedding-3-small"))
    _put(body, "usage", usage)
    return body


# --- anthropic ---------------------------------------------------------------------------


def _anthropic_usage(rng: random.Random, start: bool) -> Any:
    if rng.random() < 0.08:
        return rng.choice((MISSING, None, "x"))
    u: dict[str, Any] = {}
    if start or rng.random() < 0.3:
        _put(u, "input_tokens", _tokens(rng))
    _put(u, "output_tokens", _tokens(rng))
    if rng.random() < 0.4:
        _put(u, "cache_read_input_tokens", _tokens(rng))
    if rng.random() < 0.4:
        _put(u, "cache_creation_input_tokens", _tokens(rng))
    _maybe_unknown(rng, u)
    return u


def _anthropic_message(rng: random.Random, streaming_start: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant"}
    content: Any = [] if streaming_start else [{"type": "text", "text": _text(rng)}]
    if not streaming_start:
        content = rng.choice((content, content, content, [], None, MISSING, [{"type": "weird"}]))
    _put(body, "content", content)
    _put(body, "model", _model(rng, "claude-3-5-haiku-latest"))
    body["stop_reason"] = None if streaming_start else rng.choice(("end_turn", "max_tokens", None))
    body["stop_sequence"] = None
    _put(body, "usage", _anthropic_usage(rng, start=True))
    _maybe_unknown(rng, body)
    return body


def _anthropic_events(rng: random.Random) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    if rng.random() < 0.95:
        events.append(("message_start", {"type": "message_start", "message": _anthropic_message(rng, True)}))
    events.append(
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
    )
    if rng.random() < 0.2:
        events.append(("ping", {"type": "ping"}))
    for _ in range(rng.randint(0, 5)):
        events.append(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": _text(rng)},
                },
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    for _ in range(rng.choice((0, 1, 1, 1, 2))):
        delta: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}
        _put(delta, "usage", _anthropic_usage(rng, start=False))
        events.append(("message_delta", delta))
    events.append(("message_stop", {"type": "message_stop"}))
    if rng.random() < 0.1:
        err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        events.insert(rng.randint(0, len(events)), ("error", err))
    if rng.random() < 0.05:
        events.insert(rng.randint(0, len(events)), ("mystery", {"type": "mystery", "x": 1}))
    return events


# --- SSE and body mutations ----------------------------------------------------------------


def _sse(rng: random.Random, events: list[tuple[str | None, Any]], done: bool) -> tuple[list[bytes], str]:
    sep = b"\r\n" if rng.random() < 0.08 else b"\n"
    kinds: list[str] = []
    out: list[bytes] = []
    for name, payload in events:
        data = _dumps(payload)
        roll = rng.random()
        if roll < 0.015:
            data = data[: max(1, len(data) // 2)]
            kinds.append("bad-json-event")
        elif roll < 0.025:
            data = data.replace(b'"', b'"\xff', 1)
            kinds.append("non-utf8-event")
        lines: list[bytes] = []
        if name is not None:
            lines.append(b"event: " + name.encode())
        if rng.random() < 0.03 and len(data) > 10:
            mid = len(data) // 2
            lines += [b"data: " + data[:mid], b"data: " + data[mid:]]
            kinds.append("multiline-data")
        else:
            lines.append(b"data: " + data)
        out.append(sep.join(lines) + sep + sep)
        if rng.random() < 0.05:
            out.append(rng.choice((b": keep-alive", b"retry: 100", b"event: ping\ndata: {}")) + sep + sep)
            kinds.append("comment")
    if done:
        out.append(b"data: [DONE]" + sep + sep)
    return out, ",".join(sorted(set(kinds)))


def _split(rng: random.Random, body: bytes) -> tuple[bytes, ...]:
    if len(body) < 2:
        return (body,)
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 6))))
    return tuple(body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True))


def _mutate_body(rng: random.Random, body: bytes) -> tuple[bytes, str]:
    roll = rng.random()
    if roll < 0.70:
        return body, "valid"
    choices: list[tuple[str, Callable[[], bytes]]] = [
        ("truncated", lambda: body[: rng.randint(0, max(0, len(body) - 1))]),
        ("garbage", lambda: b"<html>502 Bad Gateway</html>"),
        ("empty", lambda: b""),
        ("json-null", lambda: b"null"),
        ("json-list", lambda: b"[1,2]"),
        ("json-number", lambda: b"42"),
        ("non-utf8", lambda: body.replace(b'"', b'"\xc3\x28', 1)),
        ("latin1", lambda: body.replace(b"hi", b"h\xe9")),
        ("trailing-garbage", lambda: body + b"}}"),
        ("nan-literal", lambda: body.replace(b":0", b":NaN", 1)),
    ]
    name, make = rng.choice(choices)
    return make(), name


_JSON = "application/json"


def _content_type(rng: random.Random, stream: bool) -> str | None:
    if rng.random() < 0.85:
        return "text/event-stream; charset=utf-8" if stream else _JSON
    return rng.choice(
        (_JSON + "; charset=utf-8", "text/plain", "text/html", "application/octet-stream", None)
        + (("text/event-stream",) if not stream else (_JSON,))
    )


def _error_body(rng: random.Random, anthropic: bool) -> bytes:
    if rng.random() < 0.3:
        return rng.choice((b"", b"oops", b"<html>bad</html>", b"\xff\xfe", b"null"))
    if anthropic:
        return _dumps({"type": "error", "error": {"type": "api_error", "message": "upstream failed"}})
    return _dumps({"error": {"message": "upstream failed", "type": "server_error", "code": None}})


def _cut(rng: random.Random, parts: list[bytes]) -> tuple[int | None, bool, str]:
    body = b"".join(parts)
    if rng.random() < 0.7 or not body:
        return None, False, ""
    boundaries = [sum(len(p) for p in parts[:i]) for i in range(1, len(parts))]
    kind = rng.choice(("zero", "json", "after-data", "boundary", "before-last", "in-frame", "one-byte-short"))
    if kind == "zero":
        return 0, False, kind
    if kind == "after-data":
        at = body.find(b"data: ", rng.randint(0, len(body) - 1))
        return (len(body) // 2 if at < 0 else at + 6), False, kind
    if kind == "boundary" and boundaries:
        return rng.choice(boundaries), False, kind
    if kind == "before-last" and boundaries:
        return boundaries[-1], False, kind
    if kind == "one-byte-short":
        return len(body) - 1, False, kind
    return rng.randint(1, max(1, len(body) - 1)), kind == "in-frame", kind


def _framing(rng: random.Random, stream: bool) -> Framing:
    if stream:
        return rng.choice(("chunked", "chunked", "chunked", "length", "close"))
    return rng.choice(("length", "length", "length", "chunked", "close"))


def _case(rng: random.Random, index: int) -> Case:
    mode: Mode = rng.choices([m for m, _ in MODES], [w for _, w in MODES])[0]
    stream = mode in STREAMING
    anthropic = mode.startswith("anthropic")
    kinds: list[str] = []
    status = 200
    if rng.random() < 0.08:
        status = rng.choice((201, 400, 401, 404, 422, 429, 500, 503))
    if status >= 400:
        parts = [_error_body(rng, anthropic)]
        kinds.append(f"status-{status}")
        ctype: str | None = _JSON if rng.random() < 0.8 else rng.choice(("text/plain", None))
    elif stream:
        if mode == "openai_chat_stream":
            events: list[tuple[str | None, Any]] = [(None, e) for e in _chat_events(rng)]
            done = rng.random() < 0.85
        elif mode == "openai_responses_stream":
            events = [(e["type"], e) for e in _responses_events(rng)]
            done = rng.random() < 0.1
        else:
            events = list(_anthropic_events(rng))
            done = False
        parts, sse_kinds = _sse(rng, events, done)
        kinds += [k for k in (sse_kinds, "" if done else "no-done") if k]
        if rng.random() < 0.1:
            parts = list(_split(rng, b"".join(parts)))
            kinds.append("split")
        ctype = _content_type(rng, stream=True)
    else:
        if mode == "openai_chat":
            obj = _chat_completion(rng)
        elif mode == "openai_responses":
            obj = _response_object(rng)
        elif mode == "openai_embeddings":
            obj = _embeddings(rng)
        else:
            obj = _anthropic_message(rng)
        body, mutation = _mutate_body(rng, _dumps(obj))
        kinds.append(mutation)
        parts = list(_split(rng, body)) if rng.random() < 0.2 else [body]
        ctype = _content_type(rng, stream=False)
    if ctype is None:
        kinds.append("no-content-type")
    elif not ctype.startswith("text/event-stream" if stream and status < 400 else _JSON):
        kinds.append("content-type:" + ctype.split(";")[0])
    framing = _framing(rng, stream)
    cut, in_frame, cut_kind = _cut(rng, parts)
    if cut is not None:
        kinds.append(f"cut-{cut_kind}")
    headers: list[tuple[str, str]] = [] if ctype is None else [("content-type", ctype)]
    if rng.random() < 0.3:
        headers.append(("x-request-id", f"req_{index}"))
    consume: Consume = ("all", 0)
    if stream:
        roll = rng.random()
        if roll < 0.12:
            consume = ("break", rng.randint(0, 4))
        elif roll < 0.16:
            consume = ("none", 0)
    response = RawResponse(
        status, tuple(headers), tuple(parts), framing, cut, in_frame and framing == "chunked"
    )
    kind = ",".join(k for k in kinds if k) or "valid"
    return Case(f"c{index}", mode, consume, rng.random() < 0.12, kind, response)


def generate(seed: int, count: int) -> list[Case]:
    rng = random.Random(seed)
    return [_case(rng, i) for i in range(count)]
