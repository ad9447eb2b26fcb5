"""Turn recorded HTTP cassettes into :meth:`Reply.raw` replies for the fake server.

Reads the three formats found in ``shared/real-responses`` (see its INDEX.md):

* vcrpy YAML with ``response.body.string`` as text;
* vcrpy YAML with a ``!!binary`` body compressed per ``Content-Encoding`` (gzip/deflate), which is
  decompressed here so the replay needs no content-encoding;
* pydantic-ai YAML, where JSON bodies live under ``parsed_body`` instead of ``body``.

Framing headers are dropped (the server recomputes them). A response recorded without
``content-type`` (openinference cassettes) gets ``text/event-stream`` when its body is SSE and
``application/json`` otherwise. SSE bodies are replayed with chunked encoding, one event a chunk.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import yaml

from otel_tokens.fakellm.replies import RecordedExchange, Reply

_DROP = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"})
_SSE_STARTS = (b"event:", b"data:", b":")

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CassetteError(ValueError):
    """A cassette that cannot be replayed; the message names the file and interaction."""


def load_cassette(path: str | Path) -> list[Reply]:
    """One ``Reply.raw`` per recorded interaction, in order, each with ``.recorded`` set."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise CassetteError(f"{path}: cannot read cassette: {exc}") from None
    interactions = data.get("interactions") if isinstance(data, dict) else None
    if not isinstance(interactions, list):
        raise CassetteError(f"{path}: no 'interactions' list; is this a vcrpy cassette?")
    replies = []
    for index, interaction in enumerate(interactions):
        try:
            replies.append(_reply(interaction))
        except (KeyError, TypeError, ValueError, OSError, zlib.error) as exc:
            raise CassetteError(f"{path}: interaction {index}: {type(exc).__name__}: {exc}") from None
    return replies


def _reply(interaction: dict[str, Any]) -> Reply:
    request, response = interaction["request"], interaction["response"]
    headers = _headers(response.get("headers"))
    encoding = headers.pop("content-encoding", "").strip().lower()
    body = _decode(_body(response, is_response=True), encoding)
    for name in _DROP:
        headers.pop(name, None)
    if "content-type" not in headers:
        sse = body.lstrip().startswith(_SSE_STARTS)
        headers["content-type"] = "text/event-stream; charset=utf-8" if sse else "application/json"
    status = response["status"]
    code = int(status["code"] if isinstance(status, dict) else status)
    chunked = headers["content-type"].startswith("text/event-stream")
    return Reply.raw(code, headers, body, chunked=chunked, recorded=_recorded(request))


def _headers(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    headers: dict[str, str] = {}
    for name, value in raw.items():
        values = value if isinstance(value, list) else [value]
        headers[str(name).lower()] = ", ".join(str(v) for v in values)
    return headers


def _body(part: dict[str, Any], *, is_response: bool) -> bytes:
    if "parsed_body" in part and part["parsed_body"] is not None:
        return json.dumps(part["parsed_body"]).encode("utf-8")
    body = part.get("body")
    if isinstance(body, dict):
        body = body.get("string")
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(f"{'response' if is_response else 'request'} body is a {type(body).__name__}")


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)
    raise ValueError(f"unsupported content-encoding {encoding!r}; decompress the body before replay")


def _recorded(request: dict[str, Any]) -> RecordedExchange:
    raw = _body(request, is_response=False)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return RecordedExchange(method=str(request.get("method", "")), uri=str(request.get("uri", "")), json=body)
