"""`otel-tokens stack generate`: write the stack files for a budget file into a directory.

The layout under ``--out`` is the repository's: ``dashboards/*.json``,
``deploy/prometheus/rules``, ``deploy/prometheus/tests``,
``deploy/grafana/provisioning/alerting`` and ``collector/agents.yaml`` (the coding-agent
pipeline with prices generated from genai-prices).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from otel_tokens.budgets.policy import Policy
from otel_tokens.stack import _yaml, rules, scenarios, scenarios_budgets, scenarios_day
from otel_tokens.stack.budgets import Budget, BudgetError, budget_file, daily_budgets, load_stack_policy

EXTRA_HINT = "dashboards need grafana-foundation-sdk: pip install 'otel-tokens[stack]'"


class StackError(ValueError):
    """A problem the user can fix, as one line."""


def generate(out: Path, budgets: Path | None = None) -> list[Path]:
    """Render every stack file into `out`; return the paths written."""
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        raise StackError(f"stack generate: {EXTRA_HINT}") from None
    try:
        policy = load_stack_policy(budgets if budgets is not None else budget_file())
    except BudgetError as exc:
        raise StackError("\notel-tokens: ".join(exc.errors)) from None
    from otel_tokens.stack import agents, dashboards

    return (
        dashboards.write_all(out, policy)
        + write_rules(out, budgets=daily_budgets(policy), policy=policy)
        + agents.write(out)
    )


def write_rules(
    repo_root: Path,
    *,
    thresholds: rules.Thresholds = rules.DEFAULTS,
    budgets: Sequence[Budget] | None = None,
    policy: Policy | None = None,
) -> list[Path]:
    """Write the Prometheus rules, their promtool tests and the Grafana alerting files."""
    from otel_tokens.stack import grafana_alerts  # needs the [stack] extra

    policy = policy if policy is not None else rules.default_policy()
    chosen = tuple(budgets) if budgets is not None else daily_budgets(policy)
    rule_groups = rules.groups(thresholds, chosen, policy)
    written: list[Path] = []
    for name, content in rules.prometheus_files(rule_groups).items():
        written.append(_yaml.write(repo_root / rules.RULES_DIR / name, content, rules.GENERATED))
    rule_files = [f"../rules/{name}" for name in rules.prometheus_files(rule_groups)]
    for name, content in promtool_tests(rule_groups, thresholds, rule_files, chosen, policy).items():
        written.append(_yaml.write(repo_root / rules.TESTS_DIR / name, content, rules.GENERATED))
    written += grafana_alerts.write(repo_root, rule_groups)
    return written


def promtool_tests(
    rule_groups: Sequence[rules.Group],
    t: rules.Thresholds,
    rule_files: list[str],
    budgets: tuple[Budget, ...] | None = None,
    policy: Policy | None = None,
) -> dict[str, dict[str, object]]:
    alerts = {r.uid: r for g in rule_groups for r in g.rules if isinstance(r, rules.Alert)}
    files = {  # name: (test groups, evaluation interval)
        "spend-spike.yml": (scenarios.spend_spike(alerts, t), "1m"),
        "runaway-loop.yml": (scenarios.runaway_loop(alerts, t), "1m"),
        "repeated-requests.yml": (scenarios.repeated_requests(alerts, t), "1m"),
        "retry-storm.yml": (scenarios.retry_storm(alerts, t), "1m"),
        "unpriced-model.yml": (scenarios.unpriced_model(alerts, t), "1m"),
        "daily-budget.yml": (scenarios_day.daily_budget(alerts, t, budgets), "1m"),
        "budgets.yml": (scenarios_budgets.budget_rules(alerts, t, policy or Policy()), "1m"),
        "recording.yml": (scenarios_day.recording(alerts, t), "5m"),  # exact values do not need 1m steps
    }
    return {
        name: {"rule_files": rule_files, "evaluation_interval": interval, "tests": tests}
        for name, (tests, interval) in files.items()
    }
