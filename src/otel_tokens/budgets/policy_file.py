"""The budget file (``OTEL_TOKENS_BUDGETS``, YAML or JSON) -> `Policy`, every problem one line.

Format::

    timezone: UTC                   # calendar periods are computed in this zone
    output_defaults: {"my-model*": 4096}   # optional: output tokens assumed without max_tokens
    budgets:
      - name: platform-daily        # [a-z0-9][a-z0-9_-]*, unique
        match: {team: platform}     # user, team, task, task_size, pipeline, model, provider,
                                    # service: a glob or a list of globs; {} = everything
        limit_usd: 200
        period: day                 # day | week | month | task (one run, subprocesses included)
        warn_at: [0.75, 0.9, 1.0]   # soft thresholds (the default), each reported once a period
        action: warn                # warn (soft cap) | block (hard cap)
        per: user                   # optional: each user (team, ...) gets its own allowance
        on_ledger_error: allow      # allow (default) | block, when the ledger is unreachable
    models:                         # optional: which work may use which models
      - match: {task_size: S}
        deny: ["claude-opus-*", "o3*"]
        action: warn                # or block

The daily-burn format of earlier versions (``{name, daily_usd, team?}``) still loads: it
means ``{name, match: {team}, limit_usd: daily_usd, period: day, action: warn}`` in UTC.

`load_policy` never raises: it returns the budgets that parsed and one message per
malformed field, each ``FILE:LINE: problem (fix: how)``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from otel_tokens.budgets.policy import (
    ACTIONS,
    DEFAULT_WARN_AT,
    LEDGER_ERROR_ACTIONS,
    MATCH_KEYS,
    MAX_THRESHOLDS,
    PERIODS,
    Budget,
    Match,
    ModelRule,
    Policy,
    zone,
)

NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TOP: Final = ("timezone", "budgets", "models", "output_defaults")
_BUDGET: Final = ("name", "match", "limit_usd", "period", "warn_at", "action", "per", "on_ledger_error")
_LEGACY: Final = ("name", "daily_usd", "team")
_MODEL_RULE: Final = ("match", "deny", "action")
_EXAMPLE: Final = "budgets: [{name: all, match: {}, limit_usd: 500, period: day}]"


class _Errors:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.found: list[tuple[int, str]] = []

    @property
    def messages(self) -> list[str]:
        """In file order (a stable sort keeps problems on one line in the order found)."""
        return [m for _, m in sorted(self.found, key=lambda item: item[0])]

    def __len__(self) -> int:
        return len(self.found)

    def add(self, node: Node | None, problem: str, fix: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        self.found.append((line, f"{self.path}:{line}: {problem} (fix: {fix})"))


def load_policy(path: Path) -> tuple[Policy, list[str]]:
    """Parse a budget file: (the policy of everything that parsed, one line per problem)."""
    errors = _Errors(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return Policy(source=str(path)), [
            f"{path}: cannot read the budget file: {reason}"
            " (fix: point OTEL_TOKENS_BUDGETS at a readable file)"
        ]
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or "not valid YAML or JSON"
        return Policy(source=str(path)), [
            f"{path}:{line}: invalid YAML/JSON: {problem} (fix: check indentation, quotes and brackets)"
        ]
    if not isinstance(root, MappingNode):
        errors.add(root, "the budget file must be a mapping with a `budgets:` list", f"e.g. {_EXAMPLE}")
        return Policy(source=str(path)), errors.messages
    top = _fields(root, _TOP, "top-level", errors)
    tz = "UTC"
    if "timezone" in top:
        node = top["timezone"]
        value = _scalar(node)
        try:
            if value is None or not value:
                raise ValueError(value)
            zone(value)
            tz = value
        except (ValueError, KeyError, OSError):
            errors.add(node, f"unknown timezone {value!r}", "use an IANA name like UTC or Europe/Berlin")
    budgets: list[Budget] = []
    entries = top.get("budgets")
    if entries is None:
        errors.add(root, "missing the `budgets:` list", f"e.g. {_EXAMPLE}")
    elif not isinstance(entries, SequenceNode):
        errors.add(entries, "`budgets` must be a list", "start each budget with `- name: ...`")
    else:
        for entry in entries.value:
            budget = _budget(entry, errors)
            if budget is None:
                continue
            if any(b.name == budget.name for b in budgets):
                errors.add(
                    entry, f"budget name {budget.name!r} is used twice", "give each budget its own name"
                )
                continue
            budgets.append(budget)
    models = _models(top.get("models"), errors)
    defaults = _output_defaults(top.get("output_defaults"), errors)
    policy = Policy(tuple(budgets), models, tz, defaults, str(path))
    return policy, errors.messages


def _fields(node: MappingNode, allowed: tuple[str, ...], what: str, errors: _Errors) -> dict[str, Node]:
    out: dict[str, Node] = {}
    for key, value in node.value:
        name = _scalar(key)
        if name is None or name not in allowed:
            errors.add(key, f"unknown {what} key {name!r}", f"use only {', '.join(allowed)}")
        elif name in out:
            errors.add(key, f"{what} key {name!r} is given twice", "keep one")
        else:
            out[name] = value
    return out


def _scalar(node: Node | None) -> str | None:
    return node.value if isinstance(node, ScalarNode) and isinstance(node.value, str) else None


def _name(f: dict[str, Node], entry: Node, errors: _Errors) -> str | None:
    name = _scalar(f.get("name"))
    if name is None or not NAME.match(name):
        errors.add(f.get("name", entry), "`name` must match [a-z0-9][a-z0-9_-]*", "e.g. `name: team-search`")
    return name


def _budget(entry: Node, errors: _Errors) -> Budget | None:
    if not isinstance(entry, MappingNode):
        errors.add(entry, "each budget must be a mapping", f"e.g. {_EXAMPLE}")
        return None
    keys = {_scalar(k) for k, _ in entry.value}
    if "daily_usd" in keys and not keys & {"limit_usd", "period", "match"}:
        return _legacy(entry, errors)
    before = len(errors)
    f = _fields(entry, _BUDGET, "budget", errors)
    name = _name(f, entry, errors)
    limit = _money(f.get("limit_usd"), entry, "limit_usd", errors)
    period = _choice(f.get("period"), entry, "period", PERIODS, None, errors)
    action = _choice(f.get("action"), entry, "action", ACTIONS, "warn", errors)
    on_error = _choice(
        f.get("on_ledger_error"), entry, "on_ledger_error", LEDGER_ERROR_ACTIONS, "allow", errors
    )
    match = _match(f.get("match"), errors)
    warn_at = _thresholds(f.get("warn_at"), errors)
    per = _per(f.get("per"), errors)
    if len(errors) > before or name is None or limit is None or period is None:
        return None
    return Budget(
        name,
        limit,
        period,
        match or Match(),
        warn_at,
        action or "warn",
        on_error or "allow",
        per,
        entry.start_mark.line + 1,
    )


def _legacy(entry: MappingNode, errors: _Errors) -> Budget | None:
    before = len(errors)
    f = _fields(entry, _LEGACY, "budget (daily_usd format)", errors)
    name = _name(f, entry, errors)
    limit = _money(f.get("daily_usd"), entry, "daily_usd", errors)
    team = f.get("team")
    team_value = _scalar(team)
    if team is not None and not team_value:
        errors.add(team, "`team` must be a non-empty otel_tokens.team value", "e.g. `team: search`")
    if len(errors) > before or name is None or limit is None:
        return None
    match = Match((("team", (team_value,)),)) if team_value else Match()
    return Budget(name, limit, "day", match, DEFAULT_WARN_AT, "warn", line=entry.start_mark.line + 1)


def _money(node: Node | None, entry: Node, key: str, errors: _Errors) -> Decimal | None:
    if node is None:
        errors.add(entry, f"missing `{key}`", f"add `{key}: 100` (USD)")
        return None
    text = _scalar(node)
    try:
        value = Decimal(text) if text is not None else Decimal(-1)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0:
        errors.add(node, f"`{key}` must be a positive number of USD, got {text!r}", f"e.g. `{key}: 150`")
        return None
    return value


def _choice(
    node: Node | None, entry: Node, key: str, allowed: tuple[str, ...], default: str | None, errors: _Errors
) -> str | None:
    if node is None:
        if default is None:
            errors.add(entry, f"missing `{key}`", f"add `{key}: {allowed[0]}` ({' | '.join(allowed)})")
        return default
    value = _scalar(node)
    if value not in allowed:
        errors.add(
            node,
            f"`{key}` must be one of {' | '.join(allowed)}, got {value!r}",
            f"e.g. `{key}: {allowed[0]}`",
        )
        return None
    return value


def _globs(node: Node, what: str, errors: _Errors) -> tuple[str, ...] | None:
    if isinstance(node, ScalarNode) and node.value:
        return (str(node.value),)
    if isinstance(node, SequenceNode) and node.value and all(_scalar(v) for v in node.value):
        return tuple(str(v.value) for v in node.value)
    errors.add(
        node, f"{what} must be a value or a non-empty list of values (globs allowed)", 'e.g. ["gpt-4o*"]'
    )
    return None


def _match(node: Node | None, errors: _Errors) -> Match | None:
    if node is None:
        return Match()
    if not isinstance(node, MappingNode):
        errors.add(
            node, "`match` must be a mapping", "e.g. `match: {team: platform}`; `match: {}` is everything"
        )
        return None
    f = _fields(node, MATCH_KEYS, "match", errors)
    out: list[tuple[str, tuple[str, ...]]] = []
    for key, value in f.items():
        globs = _globs(value, f"match.{key}", errors)
        if globs is not None:
            out.append((key, globs))
    return Match(tuple(out))


def _thresholds(node: Node | None, errors: _Errors) -> tuple[Decimal, ...]:
    if node is None:
        return DEFAULT_WARN_AT
    fix = "e.g. `warn_at: [0.75, 0.9, 1.0]` (fractions of limit_usd, ascending)"
    if not isinstance(node, SequenceNode) or not 0 < len(node.value) <= MAX_THRESHOLDS:
        errors.add(node, f"`warn_at` must be a list of 1 to {MAX_THRESHOLDS} fractions", fix)
        return DEFAULT_WARN_AT
    values: list[Decimal] = []
    for item in node.value:
        text = _scalar(item)
        try:
            value = Decimal(text) if text is not None else Decimal(-1)
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or value <= 0 or (values and value <= values[-1]):
            errors.add(item, f"`warn_at` value {text!r} must be a fraction > 0, above the one before", fix)
            return DEFAULT_WARN_AT
        values.append(value)
    return tuple(values)


def _per(node: Node | None, errors: _Errors) -> tuple[str, ...]:
    if node is None:
        return ()
    keys = (
        (node.value,)
        if isinstance(node, ScalarNode)
        else tuple(_scalar(v) or "" for v in getattr(node, "value", ()))
    )
    bad = [k for k in keys if k not in MATCH_KEYS]
    if not keys or bad or not isinstance(node, ScalarNode | SequenceNode):
        errors.add(
            node, f"`per` must name match keys, got {bad[0] if bad else node.value!r}", "e.g. `per: user`"
        )
        return ()
    return tuple(str(k) for k in keys)


def _models(node: Node | None, errors: _Errors) -> tuple[ModelRule, ...]:
    if node is None:
        return ()
    if not isinstance(node, SequenceNode):
        errors.add(node, "`models` must be a list", "e.g. `models: [{match: {task_size: S}, deny: [o3*]}]`")
        return ()
    rules: list[ModelRule] = []
    for entry in node.value:
        if not isinstance(entry, MappingNode):
            errors.add(
                entry, "each models rule must be a mapping", "e.g. `- {match: {task_size: S}, deny: [o3*]}`"
            )
            continue
        before = len(errors)
        f = _fields(entry, _MODEL_RULE, "models rule", errors)
        match = _match(f.get("match"), errors)
        deny = _globs(f["deny"], "deny", errors) if "deny" in f else None
        if "deny" not in f:
            errors.add(entry, "missing `deny`", 'add `deny: ["claude-opus-*"]`')
        action = _choice(f.get("action"), entry, "action", ACTIONS, "warn", errors)
        if len(errors) == before and match is not None and deny is not None and action is not None:
            rules.append(ModelRule(match, deny, action, entry.start_mark.line + 1))
    return tuple(rules)


def _output_defaults(node: Node | None, errors: _Errors) -> tuple[tuple[str, int], ...]:
    if node is None:
        return ()
    if not isinstance(node, MappingNode):
        errors.add(
            node, "`output_defaults` must map model globs to tokens", 'e.g. `output_defaults: {"my-*": 4096}`'
        )
        return ()
    out: list[tuple[str, int]] = []
    for key, value in node.value:
        text = _scalar(value) or ""
        if not _scalar(key) or not text.isdigit() or int(text) <= 0:
            errors.add(
                value, f"output_defaults[{_scalar(key)!r}] must be a positive whole number", "e.g. 4096"
            )
            continue
        out.append((str(key.value), int(text)))
    return tuple(out)
