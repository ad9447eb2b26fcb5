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
