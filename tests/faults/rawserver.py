"""A loopback HTTP/1.1 server that sends scripted bytes verbatim, cut wherever a case says.

The fault campaign needs what the fake LLM server deliberately never does: bodies cut inside a
chunk frame, bodies shorter than their Content-Length, responses framed by connection close,
non-UTF-8 bytes. A case is picked by the ``x-fault-case`` request header; every request is
recorded (headers and body) so outbound headers can be compared and scanned.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Literal

CASE_HEADER = "x-fault-case"
ARM_HEADER = "x-fault-arm"

Framing = Literal["length", "chunked", "close"]


@dataclass(frozen=True)
class RawResponse:
    """Status, headers and body parts sent verbatim.

    ``parts`` are the body's pieces (one chunk each under chunked framing). ``cut`` is the number
    of body bytes sent before the connection is closed abruptly (None: the whole body, properly
    terminated). ``cut_in_frame`` (chunked only) announces the full size of the chunk being cut
    and sends only part of it; otherwise the cut part is framed as a shorter, complete chunk.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    parts: tuple[bytes, ...]
    framing: Framing = "length"
    cut: int | None = None
    cut_in_frame: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.parts)

    def wire(self) -> tuple[bytes, bool]:
        """The bytes to send, and whether to close the connection afterwards."""
        reason = b"OK" if self.status < 400 else b"Error"
        head = [b"HTTP/1.1 %d %s" % (self.status, reason)]
        head += [f"{k}: {v}".encode("latin-1") for k, v in self.headers]
        body = self.body
        close = self.framing == "close" or self.cut is not None
        if self.framing == "length":
            head.append(b"content-length: %d" % len(body))
            payload = body if self.cut is None else body[: self.cut]
        elif self.framing == "close":
            payload = body if self.cut is None else body[: self.cut]
        else:
            head.append(b"transfer-encoding: chunked")
            payload = self._chunked()
        if close:
            head.append(b"connection: close")
        return b"\r\n".join(head) + b"\r\n\r\n" + payload, close

    def _chunked(self) -> bytes:
        out: list[bytes] = []
        left = self.cut
        for part in self.parts:
            if not part:
                continue
            if left is not None and len(part) > left:
                if self.cut_in_frame:
                    out.append(b"%x\r\n%s" % (len(part), part[:left]))
                elif left:
                    out.append(b"%x\r\n%s\r\n" % (left, part[:left]))
                return b"".join(out)
            out.append(b"%x\r\n%s\r\n" % (len(part), part))
            if left is not None:
                left -= len(part)
        if self.cut is None:
            out.append(b"0\r\n\r\n")
        return b"".join(out)


@dataclass
class Received:
    case: str
    arm: str
    request_line: bytes
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class RawServer:
    """Serve ``cases[x-fault-case]`` on 127.0.0.1 from daemon threads (one per connection)."""

    cases: dict[str, RawResponse] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> RawServer:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="rawserver").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = sock.makefile("rb")
        try:
            while True:
                line = stream.readline(65536)
                if not line:
                    return
                headers: list[tuple[str, str]] = []
                while True:
                    h = stream.readline(65536)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    headers.append((name.strip().lower(), value.strip()))
                found = dict(headers)
                length = int(found.get("content-length", "0") or 0)
                body = stream.read(length) if length else b""
                case = found.get(CASE_HEADER, "")
                with self._lock:
                    self.received.append(Received(case, found.get(ARM_HEADER, ""), line, headers, body))
                response = self.cases.get(case)
                if response is None:
                    response = RawResponse(
                        404, (("content-type", "application/json"),), (b'{"error":"no case"}',)
                    )
                data, close = response.wire()
                sock.sendall(data)
                if close:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
        except OSError:
            return
        finally:
            stream.close()
