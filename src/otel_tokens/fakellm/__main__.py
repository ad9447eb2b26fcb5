"""``python -m otel_tokens.fakellm``: serve the fake LLM until SIGINT/SIGTERM.

The first line on stdout is ``FAKE_LLM_URL=http://127.0.0.1:PORT`` (flushed), so a parent process
can read the port. Script it over HTTP: ``POST /_fake/enqueue`` (a JSON list of reply specs),
``GET /_fake/requests``, ``POST /_fake/reset``, ``GET /_fake/health``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from otel_tokens.fakellm.server import FakeLLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m otel_tokens.fakellm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each response")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed events")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        fake = FakeLLM(latency=args.latency, chunk_delay=args.chunk_delay, host=args.host, port=args.port)
        fake.start()
    except OSError as exc:
        print(f"fakellm: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"FAKE_LLM_URL={fake.base_url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
