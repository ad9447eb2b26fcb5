"""What the fake server answers: one :class:`Reply` per request, rendered per provider.

A reply is provider-neutral. ``Reply.ok`` carries *normalised* usage, the convention of the
whole package: ``input_tokens`` is the total input including cache reads and cache writes, and
``output_tokens`` includes reasoning. Each wire module translates it to what the real API sends
(e.g. Anthropic's ``input_tokens`` on the wire is the uncached remainder).

Replies travel between processes as JSON "specs" (``{"kind": "ok", "input_tokens": 10, ...}``)
through ``POST /_fake/enqueue`` and the ``x-fake-reply`` request header.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["ok", "error", "usage_null", "malformed", "raw"]
KINDS: tuple[Kind, ...] = ("ok", "error", "usage_null", "malformed", "raw")

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable(status: int) -> bool:
    """True when both SDKs retry this status by default."""
    return status in RETRYABLE_STATUSES or status >= 500


@dataclass(frozen=True)
class RecordedExchange:
    """Where a replayed reply came from: the recorded request of a cassette interaction."""

    method: str
    uri: str
    json: Any = None


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the class methods, not the constructor."""

    kind: Kind
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    text: str = ""
    model: str | None = None
    chunks: int = 5
    finish_reason: str | None = None
    cut_after: int | None = None
    details: bool = True
    status: int = 200
    message: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False
    latency: float | None = None
    chunk_delay: float | None = None
    tool_name: str | None = None
    tool_args: str = "{}"
    recorded: RecordedExchange | None = field(default=None, compare=False)

    @classmethod
    def ok(
        cls,
        input_tokens: int = 100,
        output_tokens: int = 20,
        cache_read: int = 0,
        cache_write: int = 0,
        reasoning: int = 0,
        text: str = "hi",
        model: str | None = None,
        chunks: int = 5,
        finish_reason: str | None = None,
        cut_after: int | None = None,
        details: bool = True,
        latency: float | None = None,
        chunk_delay: float | None = None,
        tool_name: str | None = None,
        tool_args: str = "{}",
    ) -> Reply:
        """A successful answer with the given normalised usage.

        ``tool_name``/``tool_args`` (a JSON object as text) make the answer a tool-use turn: one
        tool call instead of the text (Anthropic ``tool_use``, Responses ``function_call``,
        Gemini ``functionCall``), so an agent runs the tool and calls the model again.

        ``chunks``: number of content deltas when streamed. ``cut_after=N``: a stream is closed
        abruptly after N content deltas (no usage, no terminator); a JSON body is truncated.
        ``details=False`` leaves out the optional usage breakdowns (older API shapes).
        ``latency``/``chunk_delay`` override the server's defaults for this reply.
        """
        for name, value in (
            ("input_tokens", input_tokens),
            ("output_tokens", output_tokens),
            ("cache_read", cache_read),
            ("cache_write", cache_write),
            ("reasoning", reasoning),
            ("chunks", chunks),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Reply.ok: {name} must be a non-negative int, got {value!r}")
        if cache_read + cache_write > input_tokens:
            raise ValueError(
                f"Reply.ok: cache_read ({cache_read}) + cache_write ({cache_write}) exceed input_tokens "
                f"({input_tokens}); input_tokens is the total input including cached tokens"
            )
        if reasoning > output_tokens:
            raise ValueError(
                f"Reply.ok: reasoning ({reasoning}) exceeds output_tokens ({output_tokens}); "
                "output_tokens includes reasoning"
            )
        if chunks < 1:
            raise ValueError("Reply.ok: chunks must be at least 1")
        if not details and (cache_read or cache_write or reasoning):
            raise ValueError("Reply.ok: details=False cannot carry cache_read, cache_write or reasoning")
        if cut_after is not None and cut_after < 0:
            raise ValueError(f"Reply.ok: cut_after must be >= 0, got {cut_after!r}")
        if tool_name is not None:
            try:
                parsed = json.loads(tool_args)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise ValueError(f"Reply.ok: tool_args must be a JSON object as text, got {tool_args!r}")
        return cls(
            kind="ok",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read=cache_read,
            cache_write=cache_write,
            reasoning=reasoning,
            text=text,
            model=model,
            chunks=chunks,
            finish_reason=finish_reason,
            cut_after=cut_after,
            details=details,
            latency=latency,
            chunk_delay=chunk_delay,
            tool_name=tool_name,
            tool_args=tool_args,
        )

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        retry_after: float | None = 0.0,
        should_retry: bool | None = None,
        latency: float | None = None,
    ) -> Reply:
        """An error in the provider's JSON error shape.

        For statuses the SDKs retry (408, 409, 429, 5xx) ``retry_after`` seconds is sent as
        ``retry-after-ms`` (preferred by both SDKs; at least 1 ms, since both fall back to
        exponential back-off of ~0.5 s on a zero delay) and as whole ``retry-after`` seconds.
        ``retry_after=None`` sends neither. ``should_retry`` sets ``x-should-retry``.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"Reply.error: status must be 4xx or 5xx, got {status!r}")
        if retry_after is not None and (retry_after < 0 or not math.isfinite(retry_after)):
            raise ValueError(f"Reply.error: retry_after must be a finite number >= 0, got {retry_after!r}")
        return cls(
            kind="error",
            status=status,
            message=message,
            retry_after=retry_after,
            should_retry=should_retry,
            latency=latency,
        )

    @classmethod
    def usage_null(cls, text: str = "hi", model: str | None = None, chunks: int = 5) -> Reply:
        """A successful answer whose usage is ``null`` (OpenAI) or missing (Anthropic)."""
        return cls(kind="usage_null", text=text, model=model, chunks=chunks)

    @classmethod
    def malformed(cls) -> Reply:
        """HTTP 200 with an invalid JSON body, or an SSE stream whose first event is garbage."""
        return cls(kind="malformed")

    @classmethod
    def raw(
        cls,
        status: int,
        headers: dict[str, str],
        body: bytes,
        chunked: bool = False,
        recorded: RecordedExchange | None = None,
        chunk_delay: float | None = None,
    ) -> Reply:
        """Send status, headers and body verbatim (cassette replay).

        Framing headers (content-length, transfer-encoding, connection, content-encoding) are
        dropped and recomputed; ``body`` must be the decoded body. ``chunked=True`` sends it with
        chunked transfer encoding, one chunk per SSE event.
        """
        return cls(
            kind="raw",
            status=status,
            headers=dict(headers),
            body=bytes(body),
            chunked=chunked,
            recorded=recorded,
            chunk_delay=chunk_delay,
        )

    def to_spec(self) -> dict[str, Any]:
        """The JSON-able spec of this reply (inverse of :func:`reply_from_spec`)."""
        allowed = _CONSTRUCTOR_FIELDS[self.kind]
        spec: dict[str, Any] = {"kind": self.kind}
        spec.update((k, v) for k, v in asdict(self).items() if k in allowed and k != "body")
        if self.kind == "raw":
            spec["body_b64"] = base64.b64encode(self.body).decode("ascii")
        return spec


_CONSTRUCTOR_FIELDS: dict[Kind, frozenset[str]] = {
    "ok": frozenset(
        {
            "input_tokens",
            "output_tokens",
            "cache_read",
            "cache_write",
            "reasoning",
            "text",
            "model",
            "chunks",
            "finish_reason",
            "cut_after",
            "details",
            "latency",
            "chunk_delay",
            "tool_name",
            "tool_args",
        }
    ),
    "error": frozenset({"status", "message", "retry_after", "should_retry", "latency"}),
    "usage_null": frozenset({"text", "model", "chunks"}),
    "malformed": frozenset(),
    "raw": frozenset({"status", "headers", "body", "body_b64", "chunked", "chunk_delay"}),
}


def reply_from_spec(spec: object) -> Reply:
    """Build a reply from its JSON spec; raises ``ValueError`` with a one-line reason."""
    if not isinstance(spec, dict):
        raise ValueError(f"reply spec must be a JSON object, got {type(spec).__name__}")
    kind = spec.get("kind", "ok")
    if kind not in KINDS:
        raise ValueError(f"reply spec: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = _CONSTRUCTOR_FIELDS[kind]
    args = {k: v for k, v in spec.items() if k != "kind"}
    unknown = sorted(set(args) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"reply spec kind={kind!r}: unknown field(s) {', '.join(unknown)}; allowed: {known}")
    try:
        if kind == "ok":
            return Reply.ok(**args)
        if kind == "error":
            if "status" not in args:
                raise ValueError("reply spec kind='error' needs 'status'")
            return Reply.error(**args)
        if kind == "usage_null":
            return Reply.usage_null(**args)
        if kind == "malformed":
            return Reply.malformed()
        return _raw_from_spec(args)
    except TypeError as exc:
        raise ValueError(f"reply spec kind={kind!r}: {exc}") from None


def _raw_from_spec(args: dict[str, Any]) -> Reply:
    body = args.pop("body", None)
    body_b64 = args.pop("body_b64", None)
    if body is not None and body_b64 is not None:
        raise ValueError("reply spec kind='raw': give 'body' (text) or 'body_b64', not both")
    if body_b64 is not None:
        try:
            data = base64.b64decode(str(body_b64), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"reply spec kind='raw': body_b64 is not base64 ({exc})") from None
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif body is None:
        data = b""
    else:
        raise ValueError("reply spec kind='raw': 'body' must be a string")
    headers = args.pop("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ValueError("reply spec kind='raw': 'headers' must be an object of strings")
    return Reply.raw(body=data, headers=headers, **args)
