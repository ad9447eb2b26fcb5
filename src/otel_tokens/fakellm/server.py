"""The fake LLM HTTP server: real HTTP/1.1 on loopback, a FIFO of scripted replies.

Every request to a provider path takes the next reply from one queue shared by all endpoints
(or the reply in its ``x-fake-reply`` header, or a default derived from the request) and gets it
rendered in the wire format of the endpoint it hit. Paths under ``/_fake/`` control the server
from other processes.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_tokens.fakellm import wire_openai
from otel_tokens.fakellm.render import render
from otel_tokens.fakellm.replies import Reply, reply_from_spec
from otel_tokens.fakellm.wire import Call, Rendered, default_reply, json_response
from otel_tokens.httpserve import serve_in_thread, stop_serving

log = logging.getLogger(__name__)

REPLY_HEADER = "x-fake-reply"
CONTROL_PREFIX = "/_fake/"
_FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the server received (control requests excluded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    body: bytes = field(repr=False)
    reply: Reply = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "reply": self.reply.to_spec(),
        }


class FakeLLM:
    """OpenAI- and Anthropic-compatible server on 127.0.0.1, served from a daemon thread.

    ``latency``: seconds slept before each response; ``chunk_delay``: seconds slept between SSE
    events. Both can be overridden per reply. Use as a context manager or ``start()``/``stop()``.
    """

    def __init__(
        self, latency: float = 0.0, chunk_delay: float = 0.0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.latency = latency
        self.chunk_delay = chunk_delay
        self._address = (host, port)
        self._lock = threading.Lock()
        self._queue: collections.deque[Reply] = collections.deque()
        self._requests: list[ReceivedRequest] = []
        self._seq = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeLLM:
        if self._server is not None:
            return self
        server = _Server(self._address, _Handler)
        server.fake = self
        self._server = server
        self._thread = serve_in_thread(server, f"fakellm-{server.server_address[1]}")
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        stop_serving(server, thread)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeLLM is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    @property
    def google_base_url(self) -> str:
        """For ``genai.Client(http_options={"base_url": ...})``, Gemini API or Vertex AI."""
        return self.base_url + "/"

    # --- script and inspection ---------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the FIFO shared by all endpoints."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"enqueue takes Reply objects, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Replies still queued."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget queued replies and received requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def _accept(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: Any,
        raw: bytes,
        override: Reply | None,
    ) -> Reply:
        """Pick the reply for a request and record both, atomically (so order matches the queue)."""
        with self._lock:
            if override is not None:
                reply = override
            elif self._queue:
                reply = self._queue.popleft()
            else:
                reply = default_reply(body, path)
            self._requests.append(ReceivedRequest(method, path, query, headers, body, raw, reply))
        return reply

    def _new_call(self, path: str, body: Any) -> Call:
        with self._lock:
            seq = next(self._seq)
        return Call(path=path, json=body, seq=seq, created=int(time.time()))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    fake: FakeLLM

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        name = f"fakellm-{self.server_address[1]}-conn"
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name=name, daemon=True
        )
        with self._open_lock:
            self._open.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._conn_threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Wake every handler blocked on a kept-alive connection and wait for its thread."""
        with self._open_lock:
            sockets, threads = list(self._open), list(self._conn_threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is normal for a test server; anything else is a bug.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        log.exception("fakellm: error while handling a request from %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fakellm: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # --- request side ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        fake = self.server.fake
        try:
            raw = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if path.startswith(CONTROL_PREFIX):
            self._send(self._control(fake, path, body, raw), 0.0)
            return
        if path.startswith(wire_openai.SIDE_PREFIXES):
            self._send(json_response(200, {}), 0.0)
            return
        call = fake._new_call(path, body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        override: Reply | None = None
        if REPLY_HEADER in headers:
            try:
                override = reply_from_spec(json.loads(headers[REPLY_HEADER]))
            except ValueError as exc:
                override = Reply.error(400, f"fakellm: bad {REPLY_HEADER} header: {exc}", retry_after=None)
        reply = fake._accept(self.command, path, query, headers, body, raw, override)
        try:
            rendered = render(reply, call)
        except Exception as exc:  # a bug here must not look like a network error to the SDK
            log.exception("fakellm: cannot render %s reply for %s", reply.kind, path)
            rendered = json_response(
                500, {"error": {"message": f"fakellm bug: {exc!r}", "type": "fakellm_error"}}
            )
        latency = fake.latency if reply.latency is None else reply.latency
        if latency > 0:
            time.sleep(latency)
        self._send(rendered, fake.chunk_delay if reply.chunk_delay is None else reply.chunk_delay)

    def _control(self, fake: FakeLLM, path: str, body: Any, raw: bytes) -> Rendered:
        action = path[len(CONTROL_PREFIX) :]
        if action == "enqueue" and self.command == "POST":
            specs = body if isinstance(body, list) else [body]
            try:
                if raw and body is None:
                    raise ValueError("body is not valid JSON")
                replies = [reply_from_spec(spec) for spec in specs]
            except ValueError as exc:
                return json_response(400, {"error": {"message": f"fakellm: /_fake/enqueue: {exc}"}})
            fake.enqueue(*replies)
            return json_response(200, {"queued": len(replies), "pending": fake.pending})
        if action == "requests" and self.command == "GET":
            return json_response(200, [request.to_dict() for request in fake.requests])
        if action == "reset" and self.command == "POST":
            fake.reset()
            return json_response(200, {"ok": True})
        if action == "health" and self.command == "GET":
            return json_response(200, {"ok": True, "pending": fake.pending})
        return json_response(
            404, {"error": {"message": f"fakellm: no control endpoint {self.command} {path}"}}
        )

    # --- response side -----------------------------------------------------------------

    def _send(self, rendered: Rendered, chunk_delay: float) -> None:
        try:
            self.send_response(rendered.status)
            for name, value in rendered.headers.items():
                if name.lower() not in _FRAMING_HEADERS:
                    self.send_header(name, value)
            if rendered.events is None:
                self.send_header("content-length", str(len(rendered.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rendered.body)
                self.wfile.flush()
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for index, event in enumerate(rendered.events):
                if index and chunk_delay > 0:
                    time.sleep(chunk_delay)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            if rendered.cut:
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True
