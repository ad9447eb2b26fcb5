"""`otel-tokens prices check FILE`: every problem as FILE:LINE with the fix, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """\
models:
  - model: gpt-4o
    provider: openai
    input_per_mtok: 2.00
    output_per_mtok: 8.00
  - model: my-llama-70b
    input_per_mtok: 0
    output_per_mtok: 0
"""
BAD = """\
models:
  - model: gpt-4o
    input_per_mtok: 2.00
    output_per_mtok: 8.00
  - model: broken
    input_per_mtok: 1.00
    output_per_mtok: abc
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_tokens", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "text", "code", "stdout", "stderr"),
    [
        ("good.yaml", GOOD, 0, "good.yaml: 2 price entries, all valid", ""),
        (
            "map.yaml",
            "providers:\n  llm-gw.internal:8443: groq\n" + GOOD,
            0,
            "map.yaml: 2 price entries, 1 provider hosts, all valid",
            "",
        ),
        (
            "unknown.yaml",
            "providers:\n  gw: nobody\nmodels:\n  - model: my-own\n    input_per_mtok: 1\n",
            2,
            "",
            "unknown.yaml:4: genai-prices does not know 'my-own', so the entry must give output_per_mtok",
        ),
        ("bad.yaml", BAD, 2, "", "bad.yaml:7: models[1].output_per_mtok must be a non-negative number"),
        ("bad.json", '{"models": [', 2, "", "bad.json:1"),
    ],
)
def test_prices_check(tmp_path: Path, name: str, text: str, code: int, stdout: str, stderr: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    out = cli("prices", "check", str(path))
    assert out.returncode == code, out.stderr
    assert stdout in out.stdout
    assert stderr in out.stderr
    assert "Traceback" not in out.stderr
    if code:
        assert all(line.startswith("otel-tokens: ") for line in out.stderr.splitlines())


def test_prices_check_missing_file(tmp_path: Path) -> None:
    out = cli("prices", "check", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2
    assert "nope.yaml: cannot read the price file" in out.stderr
