"""The user price file (``OTEL_TOKENS_PRICES``): negotiated rates and self-hosted models.

Format (YAML, or JSON when the file name ends in ``.json``)::

    models:
      - model: gpt-4o            # case-insensitive exact match; "claude-*" glob allowed
        provider: openai         # optional: any provider when absent
        input_per_mtok: 2.00     # USD per million tokens
        output_per_mtok: 8.00
        cache_read_per_mtok: 0.50    # optional; default = input rate
        cache_write_per_mtok: 2.50   # optional; default = input rate

`load_price_file` never raises: it returns the valid entries and one message per
problem, each naming ``path:line``, the problem and the fix. A bad entry is skipped; the
others still apply.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Override", "load_price_file"]

_REQUIRED = ("model", "input_per_mtok", "output_per_mtok")
_OPTIONAL = ("provider", "cache_read_per_mtok", "cache_write_per_mtok")
_RATE_EXAMPLES = {
    "input_per_mtok": "2.50",
    "output_per_mtok": "10.00",
    "cache_read_per_mtok": "1.25",
    "cache_write_per_mtok": "3.75",
}
_EXAMPLE = "models:\\n  - model: gpt-4o\\n    input_per_mtok: 2.50\\n    output_per_mtok: 10.00"


@dataclass(frozen=True, slots=True)
class Override:
    """One user price: rates in USD per million tokens, matched by model (and provider)."""

    model: str  # lower-case name, or a glob with "*" / "?"
    provider: str | None  # lower-case; None matches any provider
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal
    cache_write_per_mtok: Decimal
    source: str = ""  # "path:line", for messages

    @property
    def is_glob(self) -> bool:
        return any(c in self.model for c in "*?[")

    def matches(self, providers: tuple[str, ...], model: str) -> bool:
        """`providers`: the lower-case names the caller's provider goes by; `model` lower-case."""
        if self.provider is not None and self.provider not in providers:
            return False
        if self.is_glob:
            return fnmatch.fnmatchcase(model, self.model)
        return model == self.model


def load_price_file(path: str | os.PathLike[str]) -> tuple[list[Override], list[str]]:
    """Parse a price file: (valid overrides in file order, one error message per problem)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        reason = e.strerror or str(e)
        return [], [f"{name}: cannot read the price file: {reason} (fix: point {_env()} at a readable file)"]
    try:
        root = _compose(name, text)
    except _FileError as e:
        return [], [str(e)]
    if root is None:
        return [], [f"{name}: the price file is empty (fix: add a `models:` list, e.g. {_EXAMPLE})"]
    parser = _Parser(name)
    overrides = list(parser.file(root))
    return overrides, parser.errors


# --- parsing into YAML nodes (JSON too, so entries get line numbers) ----------------------


class _FileError(Exception):
    pass


def _compose(name: str, text: str) -> Node | None:
    if name.lower().endswith(".json"):
        try:
            value = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as e:
            raise _FileError(
                f"{name}:{e.lineno}: invalid JSON: {e.msg} at column {e.colno} "
                "(fix: check quotes, commas and brackets near that line)"
            ) from None
        # Valid JSON is YAML except for tab indentation; tabs can only be whitespace there.
        try:
            return yaml.compose(text.replace("\t", " "), Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return _json_to_node(value)  # no line numbers, but still validated
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = e.problem or e.context or "invalid YAML"
        raise _FileError(
            f"{name}{line}: invalid YAML: {problem} (fix: check the indentation and quoting near that line)"
        ) from None
    except yaml.YAMLError as e:
        raise _FileError(f"{name}: invalid YAML: {e} (fix: check the file is valid YAML)") from None


def _json_to_node(value: object) -> Node:
    if isinstance(value, dict):
        return MappingNode(
            "tag:yaml.org,2002:map",
            [(ScalarNode("tag:yaml.org,2002:str", str(k)), _json_to_node(v)) for k, v in value.items()],
        )
    if isinstance(value, list):
        return SequenceNode("tag:yaml.org,2002:seq", [_json_to_node(v) for v in value])
    if value is None:
        return ScalarNode("tag:yaml.org,2002:null", "null")
    if isinstance(value, bool):
        return ScalarNode("tag:yaml.org,2002:bool", "true" if value else "false")
    if isinstance(value, str):
        return ScalarNode("tag:yaml.org,2002:str", value, style='"')
    return ScalarNode("tag:yaml.org,2002:float", str(value))


def _env() -> str:
    from otel_tokens.names import ENV_PRICES

    return ENV_PRICES


class _Parser:
    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[str] = []

    def where(self, node: Node) -> str:
        mark = node.start_mark
        return f"{self.name}:{mark.line + 1}" if mark is not None else self.name

    def error(self, node: Node, message: str) -> None:
        self.errors.append(f"{self.where(node)}: {message}")

    def file(self, root: Node) -> Iterator[Override]:
        if not isinstance(root, MappingNode):
            self.error(root, f"the price file must be a mapping with a `models:` list (fix: e.g. {_EXAMPLE})")
            return
        models: Node | None = None
        for key, value in root.value:
            k = _text(key)
            if k == "models":
                models = value
            else:
                self.error(key, f"unknown top-level key {k!r} (fix: the only top-level key is `models`)")
        if models is None:
            self.error(root, f"missing the `models:` list (fix: e.g. {_EXAMPLE})")
            return
        if not isinstance(models, SequenceNode):
            self.error(
                models, "`models` must be a list of entries (fix: start each entry with `- model: ...`)"
            )
            return
        for i, entry in enumerate(models.value):
            override = self.entry(f"models[{i}]", entry)
            if override is not None:
                yield override

    def entry(self, at: str, node: Node) -> Override | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{at} must be a mapping (fix: e.g. `- model: gpt-4o` with its rates below)")
            return None
        fields: dict[str, Node] = {}
        ok = True
        for key, value in node.value:
            k = _text(key)
            if k not in _REQUIRED and k not in _OPTIONAL:
                allowed = ", ".join(_REQUIRED + _OPTIONAL)
                self.error(key, f"{at} has unknown key {k!r} (fix: use only {allowed})")
                ok = False
            elif k in fields:
                self.error(key, f"{at}.{k} is given twice (fix: keep one)")
                ok = False
            else:
                fields[k] = value
        for k in _REQUIRED:
            if k not in fields:
                example = "gpt-4o" if k == "model" else _RATE_EXAMPLES[k]
                self.error(node, f"{at} is missing `{k}` (fix: add `{k}: {example}`)")
                ok = False
        model = self.name_field(at, "model", fields.get("model"))
        provider = self.name_field(at, "provider", fields.get("provider"))
        rates = {k: self.rate(at, k, fields.get(k)) for k in _RATE_EXAMPLES}
        if not ok or model is None or "model" not in fields:
            return None
        if "provider" in fields and provider is None:
            return None
        if any(rates[k] is None and k in fields for k in rates):
            return None
        inp = rates["input_per_mtok"]
        out = rates["output_per_mtok"]
        assert inp is not None and out is not None  # required, checked above
        return Override(
            model=model,
            provider=provider,
            input_per_mtok=inp,
            output_per_mtok=out,
            cache_read_per_mtok=_or(rates["cache_read_per_mtok"], inp),
            cache_write_per_mtok=_or(rates["cache_write_per_mtok"], inp),
            source=self.where(node),
        )

    def name_field(self, at: str, key: str, node: Node | None) -> str | None:
        if node is None:
            return None
        text = _text(node).strip() if isinstance(node, ScalarNode) and node.tag != _NULL else ""
        if not text:
            self.error(
                node, f"{at}.{key} must be a non-empty name (fix: e.g. `{key}: {_NAME_EXAMPLES[key]}`)"
            )
            return None
        return text.lower()

    def rate(self, at: str, key: str, node: Node | None) -> Decimal | None:
        if node is None:
            return None
        value = _decimal(node)
        if value is None:
            if not isinstance(node, ScalarNode):
                shown = _kind(node)
            elif node.tag == _NULL:
                shown = "nothing"
            else:
                shown = repr(node.value)
            self.error(
                node,
                f"{at}.{key} must be a non-negative number, got {shown} "
                f"(fix: use a number like {_RATE_EXAMPLES[key]})",
            )
        return value


_NULL = "tag:yaml.org,2002:null"
_NAME_EXAMPLES = {"model": "gpt-4o", "provider": "openai"}


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def _text(node: Node) -> str:
    return node.value if isinstance(node, ScalarNode) else f"<{_kind(node)}>"


def _kind(node: Node) -> str:
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


def _decimal(node: Node) -> Decimal | None:
    """A finite, non-negative price from a scalar's text (exact: never via float)."""
    if not isinstance(node, ScalarNode) or node.tag in (_NULL, "tag:yaml.org,2002:bool"):
        return None
    try:
        value = Decimal(node.value.strip())
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value < 0:
        return None
    return value
