"""`otel-tokens stack generate` as an installed user runs it: the committed files are its output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "src" / "otel_tokens" / "stack" / "budgets.example.yaml"
COMMITTED = (
    "dashboards",
    "deploy/prometheus/rules",
    "deploy/prometheus/tests",
    "deploy/grafana/provisioning/alerting",
)
COMMITTED_FILES = (Path("collector/agents.yaml"),)  # beside the hand-written collector config


def otel_tokens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_tokens", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_generate_writes_exactly_the_committed_files(tmp_path: Path) -> None:
    done = otel_tokens("stack", "generate", "--budgets", str(EXAMPLE), "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    written = {Path(line) for line in done.stdout.splitlines()}
    committed = {p.relative_to(ROOT) for d in COMMITTED for p in (ROOT / d).iterdir()} | set(COMMITTED_FILES)
    assert written == committed
    for rel in sorted(written):
        assert (tmp_path / rel).read_bytes() == (ROOT / rel).read_bytes(), (
            f"{rel}: run scripts/generate-stack"
        )


def test_a_budget_file_of_ones_own_changes_the_budget_alerts(tmp_path: Path) -> None:
    budgets = tmp_path / "mine.yaml"
    budgets.write_text("budgets:\n  - name: platform\n    team: platform\n    daily_usd: 42\n")
    done = otel_tokens("stack", "generate", "--budgets", str(budgets), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    alerts = (tmp_path / "out" / "deploy/prometheus/rules/otel-tokens-alerts.yml").read_text()
    assert "platform" in alerts and "team-search" not in alerts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("budgets: [{name: Bad Name, daily_usd: 5}]\n", "mine.yaml:1: `name` must match"),
        ("budgets:\n  - name: ok\n    daily_usd: -1\n", "mine.yaml:3: `daily_usd` must be a positive number"),
    ],
)
def test_a_bad_budget_file_is_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "mine.yaml").write_text(text)
    done = otel_tokens("stack", "generate", "--budgets", str(tmp_path / "mine.yaml"), "--out", str(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_the_stack_extra_the_error_names_it(tmp_path: Path) -> None:
    # a sitecustomize that hides grafana_foundation_sdk, as on an install without [stack]
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nclass _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'grafana_foundation_sdk':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    done = otel_tokens("stack", "generate", "--out", str(tmp_path / "out"), env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 2
    assert "pip install 'otel-tokens[stack]'" in done.stderr and "Traceback" not in done.stderr
