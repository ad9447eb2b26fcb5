"""The embedded OTLP/HTTP receiver of ``otel-tokens run``: an agent's calls become LLM calls
of the run's task.

`AgentReceiver` listens on 127.0.0.1 (a free port) for the child's lifetime. Log batches are
decoded, normalised (`otel_tokens.agents.normalise`) and recorded through the one recorder
*inside the context captured when the receiver started* (the task's span and scope), so each
call is a CLIENT span of the task with our cost, the task's rollup counts it, and the store
writes it like any SDK call. A batch is recorded before its response is sent: when the agent
has exited, every batch it delivered is in. Metrics and traces are accepted and dropped (the
per-call logs carry everything). Nothing here raises into the run: a bad payload gets a 400,
an internal error is logged once.
"""

from __future__ import annotations

import contextvars
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from otel_tokens import names as n
from otel_tokens.agents.normalise import AgentCall, Normaliser
from otel_tokens.agents.otlp import decode_logs
from otel_tokens.attribution.context import current_scope
from otel_tokens.guard import internal_error
from otel_tokens.httpserve import serve_in_thread, stop_serving
from otel_tokens.telemetry.recorder import AttrValue, Recorder

if TYPE_CHECKING:
    from otel_tokens.budgets.gate import Gate

logger = logging.getLogger("otel_tokens.agents")

Sink = Callable[[list[AgentCall]], None]
_MAX_BODY = 64 * 1024 * 1024


def record_calls(recorder: Recorder, calls: list[AgentCall], gate: Gate | None = None) -> None:
    """Record agent calls as LLM calls of the current scope (call inside the task's context).

    The agent is the call's ``gen_ai.agent.name`` too (unless an agent scope encloses the run),
    so ``otel-tokens report --by agent`` puts Claude Code, Codex and Gemini CLI apart. With
    budgets (``OTEL_TOKENS_BUDGETS``) each call is charged to the matching ones after the fact.
    """
    scope_attrs = current_scope().span_attributes
    agent_scope = scope_attrs.get(n.GEN_AI_AGENT_NAME)
    for call in calls:
        record = call.record
        extra: dict[str, AttrValue] = {} if agent_scope else {n.GEN_AI_AGENT_NAME: call.source}
        if call.agent_cost_usd is not None:
            extra[n.AGENT_COST_USD] = call.agent_cost_usd
        if call.session_id is not None:
            extra[n.GEN_AI_CONVERSATION_ID] = call.session_id
        duration = call.duration_s
        start = call.end_ns - int(duration * 1e9) if duration is not None and call.end_ns else None
        live = recorder.start(
            record.provider,
            record.operation,
            record.request_model,
            record.stream,
            None,
            None,
            extra,
            start_time=start,
            source=call.source,
        )
        if gate is not None:
            try:
                gate.charge(record, scope_attrs, live.span)
            except Exception as exc:
                internal_error("agents.budgets", exc)
        live.finish(record, end_time=call.end_ns or None, duration=duration)


class AgentReceiver:
    """Loopback OTLP/HTTP endpoint; use as a context manager around the child's lifetime."""

    def __init__(self, recorder: Recorder, host: str = "127.0.0.1", gate: Gate | None = None) -> None:
        self._recorder = recorder
        self._gate = gate
        self._host = host
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()
        self._normaliser = Normaliser()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.calls = 0
        self.bad_requests = 0

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("AgentReceiver is not running")
        return f"http://{self._host}:{self._server.server_address[1]}"

    def start(self) -> AgentReceiver:
        self._context = contextvars.copy_context()  # the task's span and scope
        server = _Server((self._host, 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = serve_in_thread(server, "otel-tokens-agent-otlp")
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        stop_serving(server, thread)

    def __enter__(self) -> AgentReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def accept_logs(self, body: bytes, content_type: str | None, encoding: str | None) -> None:
        """Decode, normalise and record one logs request (raises ValueError on a bad body)."""
        logs = decode_logs(body, content_type, encoding)
        with self._lock:  # one thread at a time runs in the task's context
            calls = self._normaliser.calls(logs)
            if calls:
                self.calls += len(calls)
                self._context.run(record_calls, self._recorder, calls, self._gate)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: AgentReceiver

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve,
            args=(request, client_address),
            name="otel-tokens-agent-otlp-conn",
            daemon=True,
        )
        with self._open_lock:
            self._open.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
                self._conn_threads.discard(threading.current_thread())

    def close_connections(self, timeout: float = 2.0) -> None:
        with self._open_lock:
            sockets, threads = list(self._open), list(self._conn_threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # an agent hanging up mid-request is not our error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("agent otlp: " + format, *args)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length > 0 else b""

    def do_POST(self) -> None:
        ctype = self.headers.get("content-type")
        is_json = "json" in (ctype or "").lower()
        try:
            body = self._body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        status = 200
        path = self.path.split("?")[0]
        if path.endswith("/v1/logs"):
            receiver = self.server.receiver
            try:
                receiver.accept_logs(body, ctype, self.headers.get("content-encoding"))
            except ValueError as exc:
                receiver.bad_requests += 1
                logger.debug("agent otlp: bad logs payload: %s", exc)
                status = 400
            except Exception as exc:
                internal_error("agents.receiver", exc)
        elif not (path.endswith("/v1/metrics") or path.endswith("/v1/traces")):
            status = 404
        reply = b"{}" if is_json else b""
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json" if is_json else "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
