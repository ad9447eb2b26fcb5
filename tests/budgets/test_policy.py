"""The pure policy: the file's every malformed field, matching, periods, thresholds, the estimate."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from google.genai.types import GenerateContentConfig

from otel_tokens.budgets.policy import (
    Budget,
    Match,
    Policy,
    applicable,
    crossings,
    estimate,
    input_tokens,
    output_tokens,
    period_bounds,
    scope_of,
    to_nano,
    zone,
)
from otel_tokens.budgets.policy_file import load_policy
from otel_tokens.record import Usage

GOOD = """\
timezone: Europe/Berlin
budgets:
  - name: platform-daily
    match: {team: platform}
    limit_usd: 200
    period: day
  - name: alice-monthly
    match: {user: alice, model: ["gpt-4o*", "o3*"]}
    limit_usd: 1500
    period: month
    action: block
    on_ledger_error: block
  - name: small-tasks
    match: {task_size: S}
    limit_usd: 0.50
    period: task
    warn_at: [0.5, 1]
    action: block
  - name: per-user
    per: user
    limit_usd: 10
    period: week
models:
  - match: {task_size: S}
    deny: ["claude-opus-*", "o3*"]
    action: block
output_defaults: {"my-model*": 4096}
"""


def _load(tmp_path: Path, text: str, name: str = "budgets.yaml") -> tuple[Policy, list[str]]:
    path = tmp_path / name
    path.write_text(text)
    return load_policy(path)


def test_the_issue_s_file_parses_to_exactly_these_budgets(tmp_path: Path) -> None:
    policy, errors = _load(tmp_path, GOOD)
    assert errors == []
    assert policy.timezone == "Europe/Berlin"
    assert [(b.name, b.limit_usd, b.period, b.action, b.on_ledger_error, b.per) for b in policy.budgets] == [
        ("platform-daily", Decimal(200), "day", "warn", "allow", ()),
        ("alice-monthly", Decimal(1500), "month", "block", "block", ()),
        ("small-tasks", Decimal("0.50"), "task", "block", "allow", ()),
        ("per-user", Decimal(10), "week", "warn", "allow", ("user",)),
    ]
    assert policy.budgets[0].warn_at == (Decimal("0.75"), Decimal("0.9"), Decimal("1.0"))
    assert policy.budgets[2].warn_at == (Decimal("0.5"), Decimal(1))
    assert policy.budgets[1].match == Match((("user", ("alice",)), ("model", ("gpt-4o*", "o3*"))))
    assert [(r.deny, r.action) for r in policy.models] == [(("claude-opus-*", "o3*"), "block")]
    assert policy.output_defaults == (("my-model*", 4096),)


def test_json_works_too(tmp_path: Path) -> None:
    text = '{"budgets": [{"name": "all", "match": {}, "limit_usd": 5, "period": "day", "action": "block"}]}'
    policy, errors = _load(tmp_path, text, "budgets.json")
    assert errors == [] and [b.name for b in policy.budgets] == ["all"]


def test_the_daily_burn_format_still_loads_as_day_budgets(tmp_path: Path) -> None:
    old, errors = _load(
        tmp_path,
        "budgets:\n  - name: all\n    daily_usd: 500\n"
        "  - {name: team-search, team: search, daily_usd: 150}\n",
    )
    assert errors == []
    assert [(b.name, b.limit_usd, b.period, b.action, b.match) for b in old.budgets] == [
        ("all", Decimal(500), "day", "warn", Match()),
        ("team-search", Decimal(150), "day", "warn", Match((("team", ("search",)),))),
    ]


# Each malformed field: its own line, naming file and line, with the fix.
BAD = [
    ("timezone: Mars/Olympus\nbudgets: []\n", "b.yaml:1: unknown timezone 'Mars/Olympus'"),
    ("budgets: 3\n", "b.yaml:1: `budgets` must be a list"),
    ("budgets: []\nnope: 1\n", "b.yaml:2: unknown top-level key 'nope'"),
    ("budgets:\n  - name: Bad Name\n    limit_usd: 1\n    period: day\n", "b.yaml:2: `name` must match"),
    (
        "budgets:\n  - name: a\n    limit_usd: -3\n    period: day\n",
        "b.yaml:3: `limit_usd` must be a positive",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: lots\n    period: day\n",
        "b.yaml:3: `limit_usd` must be a positive",
    ),
    ("budgets:\n  - name: a\n    period: day\n", "b.yaml:2: missing `limit_usd`"),
    ("budgets:\n  - name: a\n    limit_usd: 1\n", "b.yaml:2: missing `period`"),
    ("budgets:\n  - name: a\n    limit_usd: 1\n    period: fortnight\n", "b.yaml:4: `period` must be one of"),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    action: stop\n",
        "b.yaml:5: `action` must be",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    on_ledger_error: retry\n",
        "b.yaml:5: `on_ledger_error` must be one of allow | block",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    match: {colour: red}\n",
        "b.yaml:5: unknown match key",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    match: [team]\n",
        "b.yaml:5: `match` must be a mapping",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    match: {team: []}\n",
        "b.yaml:5: match.team must be",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    warn_at: [0.9, 0.5]\n",
        "b.yaml:5: `warn_at` value '0.5'",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    warn_at: 0.5\n",
        "b.yaml:5: `warn_at` must be a list",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    per: planet\n",
        "b.yaml:5: `per` must name match keys",
    ),
    (
        "budgets:\n  - name: a\n    limit_usd: 1\n    period: day\n    colour: red\n",
        "b.yaml:5: unknown budget key 'colour'",
    ),
    (
        "budgets:\n  - {name: a, limit_usd: 1, period: day}\n  - {name: a, limit_usd: 2, period: day}\n",
        "b.yaml:3: budget name 'a' is used twice",
    ),
    ("budgets:\n  - name: a\n    daily_usd: 0\n", "b.yaml:3: `daily_usd` must be a positive"),
    ("budgets: []\nmodels:\n  - match: {}\n", "b.yaml:3: missing `deny`"),
    (
        "budgets: []\nmodels:\n  - deny: [o3*]\n    action: maybe\n",
        "b.yaml:4: `action` must be one of warn | block",
    ),
    (
        "budgets: []\noutput_defaults: {gpt-x: many}\n",
        "b.yaml:2: output_defaults['gpt-x'] must be a positive",
    ),
    ("budgets: [\n", "b.yaml:2: invalid YAML/JSON"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_every_malformed_field_is_one_line_with_file_line_and_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    _, errors = _load(tmp_path, text, "b.yaml")
    assert len(errors) == 1, errors
    assert message in errors[0] and "(fix: " in errors[0] and "\n" not in errors[0]


def test_several_bad_fields_each_get_their_line_and_the_good_budgets_still_apply(tmp_path: Path) -> None:
    policy, errors = _load(
        tmp_path,
        "budgets:\n"
        "  - name: Bad\n    limit_usd: -1\n    period: year\n"
        "  - name: fine\n    limit_usd: 5\n    period: day\n",
        "b.yaml",
    )
    assert [e.split(":")[1] for e in errors] == ["2", "3", "4"]
    assert [b.name for b in policy.budgets] == ["fine"]


def test_budgets_check_is_a_command(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(BAD[3][0] + "  - {name: ok, limit_usd: 1, period: day}\n")
    done = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "budgets", "check", str(tmp_path / "b.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"otel-tokens: {tmp_path / 'b.yaml'}:2: `name` must match [a-z0-9][a-z0-9_-]*"
        " (fix: e.g. `name: team-search`)"
    ]
    (tmp_path / "g.yaml").write_text(GOOD)
    done = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "budgets", "check", str(tmp_path / "g.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "4 budgets (2 hard, 2 soft), 1 model rules, all valid" in done.stdout


# --- matching and scopes -----------------------------------------------------------------
def _budget(**kw: object) -> Budget:
    return Budget(name="b", limit_usd=Decimal(1), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("budget", "subject", "scope"),
    [
        (_budget(), {"provider": "openai"}, "all"),
        (_budget(match=Match((("team", ("platform",)),))), {"team": "platform"}, "team=platform"),
        (_budget(match=Match((("team", ("platform",)),))), {"team": "search"}, None),
        (_budget(match=Match((("team", ("platform",)),))), {}, None),
        (_budget(match=Match((("model", ("gpt-4o*",)),))), {"model": "gpt-4o-mini"}, "model=gpt-4o*"),
        (_budget(match=Match((("model", ("gpt-4o*", "o3*")),))), {"model": "o3-mini"}, "all"),
        (_budget(per=("user",)), {"user": "alice"}, "user=alice"),
        (_budget(per=("user",)), {"team": "x"}, None),
        (_budget(period="task"), {"task_id": "t1"}, "task_id=t1"),
        (_budget(period="task"), {"user": "alice"}, None),
        (_budget(period="task", per=("user",)), {"user": "a", "task_id": "t1"}, "user=a,task_id=t1"),
    ],
)
def test_scopes(budget: Budget, subject: dict[str, str], scope: str | None) -> None:
    assert scope_of(budget, subject) == scope


# --- periods -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("period", "tz", "now", "key", "start", "end"),
    [
        (
            "day",
            "UTC",
            "2026-12-03T23:59:59+00:00",
            "d2026-12-03",
            "2026-12-03T00:00:00+00:00",
            "2026-12-04T00:00:00+00:00",
        ),
        (
            "day",
            "Europe/Berlin",
            "2026-12-03T23:30:00+00:00",
            "d2026-12-04",
            "2026-12-04T00:00:00+01:00",
            "2026-12-05T00:00:00+01:00",
        ),
        (
            "day",
            "Europe/Berlin",
            "2026-03-29T12:00:00+00:00",
            "d2026-03-29",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
        ),
        (
            "week",
            "UTC",
            "2026-12-03T10:00:00+00:00",
            "w2026-W49",
            "2026-11-30T00:00:00+00:00",
            "2026-12-07T00:00:00+00:00",
        ),
        (
            "week",
            "UTC",
            "2027-01-01T10:00:00+00:00",
            "w2026-W53",
            "2026-12-28T00:00:00+00:00",
            "2027-01-04T00:00:00+00:00",
        ),
        (
            "month",
            "UTC",
            "2026-12-31T23:00:00+00:00",
            "m2026-12",
            "2026-12-01T00:00:00+00:00",
            "2027-01-01T00:00:00+00:00",
        ),
        (
            "month",
            "America/New_York",
            "2026-03-01T03:00:00+00:00",
            "m2026-02",
            "2026-02-01T00:00:00-05:00",
            "2026-03-01T00:00:00-05:00",
        ),
    ],
)
def test_calendar_periods_in_the_file_s_timezone(
    period: str, tz: str, now: str, key: str, start: str, end: str
) -> None:
    got = period_bounds(period, datetime.fromisoformat(now), zone(tz))
    assert (got[0], got[1].isoformat(), got[2].isoformat()) == (key, start, end)


def test_applicable_resolves_every_matching_budget_with_its_period(tmp_path: Path) -> None:
    policy, _ = _load(tmp_path, GOOD)
    subject = {"user": "alice", "team": "platform", "model": "gpt-4o", "task_size": "S", "task_id": "t9"}
    got = applicable(policy, subject, datetime(2026, 12, 3, 12, tzinfo=UTC))
    assert [a.key for a in got] == [
        ("platform-daily", "team=platform", "d2026-12-03"),
        ("alice-monthly", "user=alice", "m2026-12"),  # a list of globs is one pool, not a scope
        ("small-tasks", "task_id=t9", "tt9"),
        ("per-user", "user=alice", "w2026-W49"),
    ]


# --- thresholds ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spent", "reported", "crossed"),
    [
        (0, 0, 0),
        (74, 0, 0),
        (75, 0, 0b001),
        (90, 0b001, 0b010),
        (100, 0, 0b111),
        (100, 0b111, 0),
        (200, 0b011, 0b100),
    ],
)
def test_crossings_report_each_threshold_once(spent: int, reported: int, crossed: int) -> None:
    assert crossings((75, 90, 100), spent, reported) == crossed


# --- the estimate ------------------------------------------------------------------------------
def test_the_estimate_is_bytes_in_and_max_tokens_out_at_the_dearest_input_rate() -> None:
    seen: list[Usage] = []

    def price(u: Usage) -> Decimal | None:
        seen.append(u)
        return Decimal(u.input_tokens + u.output_tokens + 10 * u.cache_write_tokens + u.cache_write_1h_tokens)

    kwargs = {
        "model": "m",
        "messages": [{"role": "user", "content": "héllo"}],
        "max_tokens": 7,
        "stream": True,
    }
    est = estimate(kwargs, "chat", "m", Policy(), price)
    inp = len('{"messages": [{"role": "user", "content": "héllo"}], "max_tokens": 7}'.encode())
    assert (est.input_tokens, est.output_tokens, est.priced) == (inp, 7, True)
    assert est.usd == Decimal(inp + 7 + 11 * inp)
    assert input_tokens(kwargs) == inp


def test_an_unpriced_model_is_estimated_at_zero_and_says_so() -> None:
    est = estimate({"messages": []}, "chat", "mystery", Policy(), lambda u: None)
    assert (est.usd, est.priced) == (Decimal(0), False)


@pytest.mark.parametrize(
    ("kwargs", "operation", "model", "tokens"),
    [
        ({"max_tokens": 5}, "chat", "gpt-4o", 5),
        ({"max_completion_tokens": 6}, "chat", "o3", 6),
        ({"max_output_tokens": 8}, "chat", "gpt-5", 8),
        ({"config": {"max_output_tokens": 9}}, "chat", "gemini-2.5-flash", 9),  # google-genai, dict form
        ({"config": GenerateContentConfig(max_output_tokens=10)}, "chat", "gemini-2.5-flash", 10),
        ({"config": GenerateContentConfig()}, "chat", "unknown", 32_768),
        ({}, "chat", "gpt-4o-mini", 16_384),
        ({}, "chat", "o3-mini", 100_000),
        ({}, "chat", "my-model-1", 4096),  # the file's output_defaults
        ({}, "chat", "unknown", 32_768),
        ({}, "embeddings", "text-embedding-3-small", 0),
    ],
)
def test_output_tokens_without_a_limit_come_from_the_documented_defaults(
    kwargs: dict[str, object], operation: str, model: str, tokens: int
) -> None:
    policy = Policy(output_defaults=(("my-model*", 4096),))
    assert output_tokens(kwargs, operation, model, policy) == tokens


def test_money_rounds_up_to_the_nano_dollar() -> None:
    assert to_nano(Decimal("0.0000000001")) == 1
    assert to_nano(Decimal("1.5")) == 1_500_000_000
