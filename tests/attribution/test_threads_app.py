"""Threads and pools in a real app (a subprocess with OTEL_TOKENS_ENABLED=true): only our
attribution crosses, per work item where it is submitted, with public APIs only, so it holds
on CPython 3.14 (whose thread bootstrap is emulated in the `like_314` mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).with_name("threads_app.py")
REPO = Path(__file__).resolve().parents[2]

A = {"task": "A", "child_of_task": True}
B = {"task": "B", "child_of_task": True}
NONE = {"task": None, "child_of_task": False}


@pytest.mark.parametrize(
    ("mode", "calls", "rollup"),
    [
        ("thread", [A], {"A": 1}),
        # 3.14 runs a thread's run() in its own (empty) contextvars.Context
        ("like_314", [A], {"A": 1}),
        # a worker started lazily inside A does not work for A for the rest of its life
        ("lazy_worker", [A, NONE], {"A": 1, "B": 0}),
        # per work item, where it is submitted: B's items are B's, items outside a task nobody's
        ("thread_pool", [A, B, NONE], {"A": 1, "B": 1}),
        ("executor", [A, B, NONE], {"A": 1, "B": 1}),
    ],
)
def test_threads_carry_only_the_attribution_of_their_work(
    fake: Any, tmp_path: Path, mode: str, calls: list[dict[str, Any]], rollup: dict[str, int]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_TOKENS_STORE=str(tmp_path / "store.db"),
        FAKE_OPENAI=fake.openai_base_url,
        PYTHONPATH=str(REPO),
    )
    out = subprocess.run(
        [sys.executable, str(APP), mode], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"calls": calls, "llm_calls": rollup}
