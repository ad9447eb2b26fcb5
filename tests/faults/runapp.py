"""Run `tests.faults.app` as an app runs: a subprocess with ``OTEL_TOKENS_ENABLED=true``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.conftest import user_env

REPO = Path(__file__).resolve().parents[2]
_OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TOKENS_STORE",
    "OTEL_TOKENS_ENABLED",
)


@dataclass
class AppRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        lines = [line for line in self.stdout.splitlines() if line.startswith("{")]
        assert lines, f"the app printed no summary (rc {self.returncode}):\n{self.stderr[-3000:]}"
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines (what the user sees from us)."""
        return [line for line in self.stderr.splitlines() if line.strip()]


def app_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in user_env().items() if k not in _OTEL_VARS and not k.startswith("OTEL_TOKENS_")}
    env |= {"OTEL_TOKENS_ENABLED": "true", "PYTHONPATH": str(REPO), "OTEL_SERVICE_NAME": "fault-app"}
    return env | dict(extra)


def without_dac_override() -> list[str]:
    """A command prefix that makes root obey file permissions (read-only directories)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def run_app(
    calls: int,
    env: Mapping[str, str],
    *args: str,
    prefix: Sequence[str] = (),
    preexec: Callable[[], None] | None = None,
    timeout: float = 120,
) -> AppRun:
    cmd = [*prefix, sys.executable, "-m", "tests.faults.app", str(calls), *args]
    done = subprocess.run(
        cmd,
        env=dict(env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )
    return AppRun(done.returncode, done.stdout, done.stderr)
