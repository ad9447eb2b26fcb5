"""The real collector and Prometheus for the back-end faults, with a collector we can kill.

`LiveStack` runs ``scripts/stack-local up`` in a directory of its own and can kill the
collector (SIGKILL, as a crash) and start it again on the same ports with the same config.
`BlackHole` accepts connections and never answers; `SlowProxy` forwards to the collector after
a delay on every request.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STACK_LOCAL = REPO / "scripts" / "stack-local"
TEST_ENV = {
    "OTEL_TOKENS_SAMPLE_PERCENT": "100",
    "OTEL_TOKENS_SAMPLE_DECISION_WAIT": "1s",
    "OTEL_TOKENS_COLLECTOR_BATCH_TIMEOUT": "200ms",
}


class LiveStack:
    def __init__(self, directory: Path, collector: Path) -> None:
        self.dir = directory
        self.collector = collector
        self.env = os.environ | TEST_ENV | {"OTEL_TOKENS_COLLECTOR_BIN": str(collector)}
        up = subprocess.run(
            [sys.executable, str(STACK_LOCAL), "up", "--dir", str(directory)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if up.returncode != 0:
            raise RuntimeError(f"scripts/stack-local up failed:\n{up.stderr}")
        self.values = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        self.otlp = self.values["OTLP_ENDPOINT"]
        self.prometheus = self.values["PROMETHEUS_URL"]
        self._restarted: subprocess.Popen[bytes] | None = None

    def down(self) -> None:
        self.kill_collector()
        subprocess.run(
            [sys.executable, str(STACK_LOCAL), "down", "--dir", str(self.dir)],
            env=self.env,
            timeout=60,
            check=False,
        )

    def _collector_pid(self) -> int | None:
        if self._restarted is not None:
            return self._restarted.pid if self._restarted.poll() is None else None
        pids = json.loads((self.dir / "pids.json").read_text())
        pid = int(pids["collector"])
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def kill_collector(self) -> None:
        pid = self._collector_pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGKILL)
        if self._restarted is not None:
            self._restarted.wait(10)
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.05)
        self._wait_port_closed()

    def _wait_port_closed(self) -> None:
        port = urllib.parse.urlparse(self.otlp).port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port or 0)) != 0:
                    return
            time.sleep(0.05)

    def start_collector(self) -> None:
        """Start the collector again exactly as stack-local does (same ports, config, env)."""
        v = self.values
        port = lambda key: urllib.parse.urlparse(v[key]).port  # noqa: E731
        env = self.env | {
            "OTEL_TOKENS_COLLECTOR_GRPC": f"127.0.0.1:{port('OTLP_GRPC_ENDPOINT')}",
            "OTEL_TOKENS_COLLECTOR_HTTP": f"127.0.0.1:{port('OTLP_ENDPOINT')}",
            "OTEL_TOKENS_COLLECTOR_HEALTH": f"127.0.0.1:{port('COLLECTOR_HEALTH_URL')}",
            "OTEL_TOKENS_COLLECTOR_METRICS_HOST": "127.0.0.1",
            "OTEL_TOKENS_COLLECTOR_METRICS_PORT": str(port("COLLECTOR_METRICS_URL")),
            "OTEL_TOKENS_PROMETHEUS_REMOTE_WRITE": f"{v['PROMETHEUS_URL']}/api/v1/write",
            "OTEL_TOKENS_TEMPO_ENDPOINT": self._sink_url(),
            "OTEL_TOKENS_TEMPO_ENCODING": "json",
        }
        config = [f"--config={REPO / 'collector' / 'config.yaml'}"]
        agents = REPO / "collector" / "agents.yaml"
        if agents.is_file():
            config.append(f"--config={agents}")
        log = open(self.dir / "collector-restarted.log", "ab")
        self._restarted = subprocess.Popen(
            [str(self.collector), *config], env=env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(v["COLLECTOR_HEALTH_URL"], timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the restarted collector did not become healthy")

    def _sink_url(self) -> str:
        # stack-local's sink port is not among the printed endpoints; read it from its command line
        pids = json.loads((self.dir / "pids.json").read_text())
        args = Path(f"/proc/{pids['sink']}/cmdline").read_bytes().split(b"\0")
        return f"http://127.0.0.1:{args[args.index(b'--port') + 1].decode()}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.load(response)["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def delivered(self, metric: str, job: str, window: str = "30m") -> float:
        """What reached Prometheus for a counter, across counter resets (a restarted collector
        starts its cumulative series again from zero): per series, the value before each drop
        plus the last value, from the raw samples."""
        total = 0.0
        for series in self.query(f'{metric}{{job="{job}"}}[{window}]'):
            values = [float(v) for _, v in series["values"]]
            total += sum(a for a, b in itertools.pairwise(values) if b < a) + values[-1]
        return total

    def wait_delivered(self, metric: str, job: str, want: float, timeout: float = 30) -> float:
        deadline = time.monotonic() + timeout
        got = 0.0
        while time.monotonic() < deadline:
            got = self.delivered(metric, job)
            if abs(got - want) <= 1e-9 * max(1.0, abs(want)):
                return got
            time.sleep(0.5)
        return got

    def wait_value(self, expr: str, want: float, timeout: float = 30) -> float | None:
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(expr)
            if got is not None and abs(got - want) <= 1e-9 * max(1.0, abs(want)):
                return got
            time.sleep(0.5)
        return got


class BlackHole:
    """A TCP port that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self._held:
            c.close()


class SlowProxy:
    """Forward every connection to `target`, each chunk the app sends `delay` seconds late;
    `sent` keeps every byte the app sent (for the secrets scan)."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target = target_port
        self.delay = delay
        self.sent: list[bytes] = []  # every byte the app sent through the proxy
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, slow: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if slow:
                    self.sent.append(data)
                    if self.delay:
                        time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _serve(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)
        threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()
        self._pipe(conn, upstream, True)

    def close(self) -> None:
        self.sock.close()
