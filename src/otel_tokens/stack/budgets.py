"""Daily spend budgets: read from a small YAML file and rendered into one alert rule each.

File format (``budgets.example.yaml`` beside this module)::

    budgets:
      - name: all            # [a-z0-9_-]+, becomes the alert's otel_tokens_budget_name label
        daily_usd: 500       # USD per UTC day, > 0
      - name: team-search
        team: search         # optional: only this otel_tokens.team's spend counts
        daily_usd: 150

`otel-tokens stack generate --budgets FILE` reads FILE, else ``$OTEL_TOKENS_BUDGET_FILE``,
else the example file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from otel_tokens import names as n

ENV_BUDGET_FILE = n.ENV_BUDGET_FILE
EXAMPLE_FILE = Path(__file__).resolve().parent / "budgets.example.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Budget:
    name: str
    daily_usd: float
    team: str | None = None


class BudgetError(ValueError):
    """A budget file problem, as one line naming the file, line and fix."""


def budget_file() -> Path:
    return Path(os.environ[ENV_BUDGET_FILE]) if os.environ.get(ENV_BUDGET_FILE) else EXAMPLE_FILE


def load_budgets(path: Path) -> tuple[Budget, ...]:
    """Parse a budget file; raise `BudgetError` with file:line and the fix on bad input."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BudgetError(
            f"{path}: cannot read budget file ({exc.strerror}); create it or unset {ENV_BUDGET_FILE}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise BudgetError(f"{path}:{line}: not valid YAML; fix the syntax") from None

    def fail(node: yaml.Node | None, message: str) -> BudgetError:
        line = node.start_mark.line + 1 if node is not None else 1
        return BudgetError(f"{path}:{line}: {message}")

    if not isinstance(root, yaml.MappingNode):
        raise fail(root, "expected a mapping with a 'budgets:' list")
    fields = {key.value: value for key, value in root.value}
    entries = fields.get("budgets")
    if not isinstance(entries, yaml.SequenceNode):
        raise fail(root, "expected 'budgets:' to be a list of {name, daily_usd, team?}")
    budgets: list[Budget] = []
    for entry in entries.value:
        if not isinstance(entry, yaml.MappingNode):
            raise fail(entry, "each budget must be a mapping like {name: all, daily_usd: 500}")
        item = {key.value: value for key, value in entry.value}
        unknown = sorted(set(item) - {"name", "daily_usd", "team"})
        if unknown:
            raise fail(entry, f"unknown key {unknown[0]!r}; allowed: name, daily_usd, team")
        name = item.get("name")
        if not isinstance(name, yaml.ScalarNode) or not _NAME.match(name.value):
            raise fail(name or entry, "'name' must match [a-z0-9][a-z0-9_-]*, e.g. 'team-search'")
        amount = item.get("daily_usd")
        try:
            daily = float(amount.value) if isinstance(amount, yaml.ScalarNode) else -1.0
        except ValueError:
            daily = -1.0
        if not daily > 0 or daily == float("inf"):
            raise fail(amount or entry, "'daily_usd' must be a positive number of USD per day, e.g. 500")
        team = item.get("team")
        if team is not None and (not isinstance(team, yaml.ScalarNode) or not team.value):
            raise fail(team, "'team' must be a non-empty otel_tokens.team value")
        if any(b.name == name.value for b in budgets):
            raise fail(name, f"budget name {name.value!r} is used twice; names must be unique")
        budgets.append(Budget(name.value, daily, team.value if team is not None else None))
    return tuple(budgets)
