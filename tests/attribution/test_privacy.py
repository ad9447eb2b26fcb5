"""Attribution stays private: nothing of a task (name, id, user, team) reaches the outbound
HTTP headers of an app whose HTTP client propagates W3C baggage, and child processes get
it only in our own carrier, OTEL_TOKENS_PARENT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply

SECRETS = ("alice@example.com", "secret-task", "TASK-ID-123", "team-x")

APP = textwrap.dedent(
    """
    import json, os, subprocess, sys
    import httpx, openai, otel_tokens
    from opentelemetry import propagate, trace
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider())
    # a baggage-propagating HTTP instrumentation: the global propagator (tracecontext and
    # baggage, the OpenTelemetry default) injected into every request, as the httpx,
    # requests and urllib instrumentations do
    http = httpx.Client(event_hooks={"request": [lambda request: propagate.inject(request.headers)]})
    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test", http_client=http)
    with otel_tokens.task("secret-task", id="TASK-ID-123", size="S", user="alice@example.com", team="team-x"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        http.get(os.environ["THIRD_PARTY"])
        child = subprocess.run(
            [sys.executable, "-S", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
            capture_output=True, text=True, check=True,
        )
    print(child.stdout.strip())
    """
)


class _HeaderSink:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sink.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/collect"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def sink() -> Iterator[_HeaderSink]:
    s = _HeaderSink()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_no_attribution_in_outbound_http_headers_or_baggage(
    fake: Any, sink: _HeaderSink, tmp_path: Path
) -> None:
    fake.enqueue(Reply.ok(input_tokens=100, output_tokens=10))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_PROPAGATORS="tracecontext,baggage",
        OTEL_TOKENS_STORE=str(tmp_path / "store.db"),
        FAKE_OPENAI=fake.openai_base_url,
        THIRD_PARTY=sink.url,
    )
    out = subprocess.run(
        [sys.executable, "-c", APP], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr

    outbound = [r.headers for r in fake.requests] + sink.headers
    assert len(outbound) == 2
    assert all("traceparent" in h for h in outbound)  # the app's propagation itself works
    assert [h for h in outbound if "baggage" in h] == []
    scanned = json.dumps(outbound)
    assert [s for s in SECRETS if s in scanned] == [], scanned

    child_env = json.loads(out.stdout.strip().splitlines()[-1])
    assert "BAGGAGE" not in child_env
    assert json.loads(child_env[n.ENV_PARENT]) == {
        n.TASK_NAME: "secret-task",
        n.TASK_ID: "TASK-ID-123",
        n.TASK_SIZE: "S",
        n.USER_ID: "alice@example.com",
        n.TEAM: "team-x",
    }
    crossing = {k for k, v in child_env.items() if any(s in v for s in SECRETS)}
    assert crossing == {n.ENV_PARENT}  # the one variable that carries it, to this child only
