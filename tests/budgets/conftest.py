"""Budgets under test: a budget file, a private ledger, the instrumentation re-read with them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Telemetry


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store directory of this test's own: the default SQLite ledger lives beside it."""
    monkeypatch.setenv("OTEL_TOKENS_STORE", str(tmp_path / "store" / "telemetry.db"))
    monkeypatch.delenv("OTEL_TOKENS_LEDGER", raising=False)
    return tmp_path / "store" / "budgets.db"


@pytest.fixture
def use_budgets(
    telemetry: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_env: Path
) -> Iterator[Callable[[str], Path]]:
    """Write a budget file and instrument with it, as OTEL_TOKENS_BUDGETS does at start-up."""
    import otel_tokens

    def use(text: str) -> Path:
        path = tmp_path / "budgets.yaml"
        path.write_text(text)
        monkeypatch.setenv("OTEL_TOKENS_BUDGETS", str(path))
        otel_tokens.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        return path

    yield use


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server (Debian's package; scripts/test installs it) on loopback."""
    import os
    import shutil
    import subprocess
    import time

    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: scripts/test installs Debian's redis-server")
        pytest.skip("needs redis-server (apt-get install redis-server)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def ledger_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ledger_env: Path
) -> str:
    """Each ledger in turn, named by OTEL_TOKENS_LEDGER as a user would."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger' / 'budgets.db'}"
    else:
        import redis

        url = request.getfixturevalue("redis_url")
        redis.Redis.from_url(url).flushdb()
    monkeypatch.setenv("OTEL_TOKENS_LEDGER", url)
    return url
