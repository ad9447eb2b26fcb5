"""The real coding-agent CLIs for the agent end-to-end tests.

They come from OTEL_TOKENS_AGENTS_PATH (CI sets it from `scripts/install-agents | tail -n 1`)
or PATH. Without them these tests skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

FIX = "run: export OTEL_TOKENS_AGENTS_PATH=$(scripts/install-agents | tail -n 1)"


def agents_path() -> str:
    extra = os.environ.get("OTEL_TOKENS_AGENTS_PATH", "")
    return f"{extra}:{os.environ.get('PATH', '')}" if extra else os.environ.get("PATH", "")


def agent_bin(program: str) -> str:
    found = shutil.which(program, path=agents_path())
    if found:
        return found
    why = f"{program} not found on OTEL_TOKENS_AGENTS_PATH or PATH"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why}; CI must run the agent tests ({FIX})", pytrace=False)
    pytest.skip(f"{why} ({FIX})")
    return ""


def clean_env(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment, as a CI job has: no inherited OTEL_*, agent config in `home`."""
    env = {"PATH": agents_path(), "HOME": str(home), "LANG": "C.UTF-8", "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}  # fmt: skip
    env.update(extra)
    return env


def otel_tokens_run(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "otel_tokens", "run", *args]
    return subprocess.run(
        cmd, env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
