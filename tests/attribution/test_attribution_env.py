"""The root scope from the environment, pseudonymised user ids, child-process reports."""

from __future__ import annotations

import hashlib
import hmac
import os
from decimal import Decimal
from pathlib import Path

import pytest

from otel_tokens import names as n
from otel_tokens.attribution import context
from otel_tokens.attribution.context import Totals
from tests.attribution_helpers import Providers, add, call, providers

__all__ = ["providers"]

PARENT = (
    '{"otel_tokens.task.name": "from-parent", "otel_tokens.task.id": "P-7", "user.id": "u_0123456789abcdef"}'
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {n.TRIGGER: n.TRIGGER_LOCAL}),
        (
            {
                n.ENV_TASK: "nightly",
                n.ENV_TASK_ID: "N-1",
                n.ENV_TASK_SIZE: "L",
                n.ENV_USER: "ci-bot",
                n.ENV_TEAM: "infra",
                "CI": "true",
            },
            {
                n.TRIGGER: n.TRIGGER_CI,
                n.TASK_NAME: "nightly",
                n.TASK_ID: "N-1",
                n.TASK_SIZE: "L",
                n.USER_ID: "ci-bot",
                n.TEAM: "infra",
            },
        ),
        # a parent process's task (our carrier) wins over inherited plain variables
        (
            {n.ENV_TASK: "nightly", n.ENV_TEAM: "infra", n.ENV_PARENT: PARENT},
            {
                n.TRIGGER: n.TRIGGER_LOCAL,
                n.TASK_NAME: "from-parent",
                n.TASK_ID: "P-7",
                n.USER_ID: "u_0123456789abcdef",
                n.TEAM: "infra",
            },
        ),
        ({n.ENV_TASK: "  ", n.ENV_PARENT: '{"unrelated": "1"}'}, {n.TRIGGER: n.TRIGGER_LOCAL}),
        ({n.ENV_TASK: "t", n.ENV_PARENT: "not json"}, {n.TRIGGER: n.TRIGGER_LOCAL, n.TASK_NAME: "t"}),
        # W3C baggage is the app's own; it never carries attribution into our scopes
        ({"BAGGAGE": "otel_tokens.task.name=spoofed,user.id=eve"}, {n.TRIGGER: n.TRIGGER_LOCAL}),
    ],
)
def test_root_scope_from_environment(environ: dict[str, str], expected: dict[str, str]) -> None:
    context.reset_for_tests(environ)
    try:
        root = context.current_scope()
        assert dict(root.span_attributes) == expected
        assert n.TASK_ID not in root.metric_attributes
        assert root.kind == "root"
    finally:
        context.reset_for_tests()


def test_calls_outside_any_task_roll_into_the_root(providers: Providers) -> None:
    add(Decimal("0.25"), inp=3)
    with providers.task("t"):
        add(Decimal("0.5"), inp=4)
    root = context.root_scope().totals()
    assert (root.cost, root.llm_calls, root.input_tokens) == (Decimal("0.75"), 2, 7)


def expected_pseudonym(key: str, user: str) -> str:
    return "u_" + hmac.new(key.encode(), user.encode(), hashlib.sha256).hexdigest()[:16]


@pytest.mark.parametrize(
    ("hash_flag", "user", "expected"),
    [
        ("", "alice@example.com", "alice@example.com"),
        ("false", "alice@example.com", "alice@example.com"),
        ("true", "alice@example.com", expected_pseudonym("team-secret", "alice@example.com")),
        ("1", "bob", expected_pseudonym("team-secret", "bob")),
        ("true", "u_0123456789abcdef", "u_0123456789abcdef"),  # already a pseudonym: kept
    ],
)
def test_pseudonymised_user_ids(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, hash_flag: str, user: str, expected: str
) -> None:
    monkeypatch.setenv(n.ENV_HASH_USER_IDS, hash_flag)
    monkeypatch.setenv(n.ENV_USER_HASH_KEY, "team-secret")
    context.reset_for_tests({n.ENV_USER: user})
    assert context.current_scope().span_attributes[n.USER_ID] == expected
    with providers.task("t", user=user):
        assert context.current_scope().span_attributes[n.USER_ID] == expected
    assert (providers.span("invoke_workflow t").attributes or {})[n.USER_ID] == expected


def test_default_hash_key_is_created_once_per_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv(n.ENV_HASH_USER_IDS, "true")
    monkeypatch.delenv(n.ENV_USER_HASH_KEY, raising=False)
    context.reset_for_tests({})
    first = context.pseudonymise_user("carol")
    key_file = tmp_path / "otel-tokens" / "user-hash-key"
    key = key_file.read_text().strip()
    assert len(key) == 64 and oct(key_file.stat().st_mode & 0o777) == "0o600"
    context.reset_for_tests({})  # a new process reads the same key
    assert context.pseudonymise_user("carol") == first == expected_pseudonym(key, "carol")
    context.reset_for_tests()


def test_totals_json_round_trip() -> None:
    t = Totals(Decimal("0.0000375"), 2, 10, 5, 3, 1, 2, 1, 1, 0)
    assert Totals.from_json(t.to_json()) == t


@pytest.mark.parametrize(
    "text", ["[]", '{"llm_calls": -1}', '{"llm_calls": true}', '{"cost": "abc"}', "not json"]
)
def test_malformed_child_reports_are_ignored(
    providers: Providers, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    with providers.task("t"):
        scope = context.current_scope()
        directory = Path(scope.children_report_dir())
        (directory / "1-bad.json").write_text(text)
        (directory / "2-good.json").write_text(Totals(Decimal("0.5"), llm_calls=1).to_json())
        add(Decimal("0.25"))
    attrs = providers.span("invoke_workflow t").attributes or {}
    assert (attrs[n.TASK_COST], attrs[n.TASK_LLM_CALLS]) == (0.75, 2)
    assert "ignoring child report" in caplog.text
    assert not directory.exists()


def test_report_to_parent_writes_once_and_atomically(tmp_path: Path) -> None:
    scope = context.Scope({}, report_dir=str(tmp_path))
    scope.add_call(call(inp=5), Decimal("0.125"))
    scope.report_to_parent_process(reset=True)
    scope.report_to_parent_process()  # nothing left: no second file
    (written,) = tmp_path.iterdir()
    assert written.name.startswith(f"{os.getpid()}-") and written.suffix == ".json"
    assert Totals.from_json(written.read_text()) == Totals(Decimal("0.125"), 1, 5)
