"""Running a loopback HTTP server on a thread, shared by the agents' OTLP receiver and the fake LLM.

`serve_in_thread` starts ``serve_forever`` (polling every 50 ms) on a daemon thread;
`stop_serving` stops it: shutdown, wake the handlers blocked on kept-alive connections
(the server's own ``close_connections``), close the socket, join the thread for up to 5 s.
Each server keeps its own connection tracking and error handling. Imports nothing of ours
(layer 0), so the product never depends on the fake server.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Protocol


class ClosingServer(Protocol):
    def serve_forever(self, poll_interval: float = 0.5) -> None: ...
    def shutdown(self) -> None: ...
    def close_connections(self, timeout: float = 2.0) -> None: ...
    def server_close(self) -> None: ...


def serve_in_thread(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(server: ClosingServer, thread: threading.Thread | None) -> None:
    server.shutdown()
    server.close_connections()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)
