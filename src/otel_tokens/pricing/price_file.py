"""The user price file (``OTEL_TOKENS_PRICES``): negotiated rates and self-hosted models.

Format (YAML, or JSON when the file name ends in ``.json``)::

    providers:                       # optional: base URL host[:port] -> genai-prices provider id
      llm-gw.internal:8443: groq     # (OTEL_TOKENS_PROVIDERS, a JSON object, wins over this)
    models:
      - model: gpt-4o                # case-insensitive exact match; "claude-*" glob allowed
        provider: openai             # optional: any provider when absent
        input_per_mtok: 2.00         # USD per million tokens
        output_per_mtok: 8.00
        cache_read_per_mtok: 0.50
        cache_write_per_mtok: 2.50       # five-minute cache writes (and writes of unknown TTL)
        cache_write_1h_per_mtok: 4.00    # one-hour cache writes
        reasoning_per_mtok: 8.00         # when reasoning is priced apart from output
        input_audio_per_mtok: 40         # also output_audio_, input_image_, output_image_per_mtok
        web_search_per_k: 10             # USD per 1,000 web-search requests
        request_fee: 0.005               # USD per request
        service_tiers:                   # rates for calls billed at a service tier
          flex: {input_per_mtok: 1.00, output_per_mtok: 4.00}
      - model: claude-sonnet-4-0
        input_per_mtok:                  # long context: above `start` input tokens, every
          base: 3                        # token of the call pays the tier's rate
          tiers: [{start: 200000, price: 6}]

An entry changes only the rates it names: every other rate of a model genai-prices knows
(its tiers, cache rates, service tiers, fees) stays. A service tier's rates apply on top of
the entry's own, which apply on top of the bundled price (and its variant for that tier). A
model genai-prices does not know needs at least ``input_per_mtok`` and ``output_per_mtok``;
its cache reads and writes cost the input rate unless the entry prices them.

`load_price_file` never raises: it returns the valid entries and one message per
problem, each naming ``path:line``, the problem and the fix. A bad entry is skipped; the
others still apply. `check_price_file` also checks each entry against the bundled prices.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Override", "PriceFile", "Rate", "check_price_file", "load_price_file", "read_price_file"]

# file key -> (genai-prices price key, multiplier to its unit)
RATE_KEYS: dict[str, tuple[str, int]] = {
    "input_per_mtok": ("input_mtok", 1),
    "output_per_mtok": ("output_mtok", 1),
    "cache_read_per_mtok": ("cache_read_mtok", 1),
    "cache_write_per_mtok": ("cache_write_mtok", 1),
    "cache_write_1h_per_mtok": ("cache_write_1h_mtok", 1),
    "reasoning_per_mtok": ("output_reasoning_mtok", 1),
    "input_audio_per_mtok": ("input_audio_mtok", 1),
    "output_audio_per_mtok": ("output_audio_mtok", 1),
    "input_image_per_mtok": ("input_image_mtok", 1),
    "output_image_per_mtok": ("output_image_mtok", 1),
    "web_search_per_k": ("web_searches_kcount", 1),
    "request_fee": ("requests_kcount", 1000),
}
_NAMES = ("model", "provider")
_RATE_EXAMPLES = {k: "2.50" for k in RATE_KEYS} | {
    "output_per_mtok": "10.00",
    "cache_read_per_mtok": "1.25",
    "cache_write_per_mtok": "3.75",
    "web_search_per_k": "10",
    "request_fee": "0.005",
}
_EXAMPLE = "models:\\n  - model: gpt-4o\\n    input_per_mtok: 2.50\\n    output_per_mtok: 10.00"


@dataclass(frozen=True, slots=True)
class Rate:
    """USD per the key's unit; ``tiers`` are (start, price): above ``start`` input tokens,
    every token of the call pays ``price``."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...] = ()


@dataclass(frozen=True, slots=True)
class Override:
    """One user price entry: the rates it names, matched by model (and provider)."""

    model: str  # lower-case name, or a glob with "*" / "?"
    provider: str | None  # lower-case; None matches any provider
    rates: tuple[tuple[str, Rate], ...]  # (file key, rate), e.g. ("input_per_mtok", Rate(2))
    service_tiers: tuple[tuple[str, tuple[tuple[str, Rate], ...]], ...] = ()
    source: str = ""  # "path:line", for messages

    @property
    def is_glob(self) -> bool:
        return any(c in self.model for c in "*?[")

    def rate(self, key: str) -> Rate | None:
        return dict(self.rates).get(key)

    def matches(self, providers: tuple[str, ...], model: str) -> bool:
        """`providers`: the lower-case names the caller's provider goes by; `model` lower-case."""
        if self.provider is not None and self.provider not in providers:
            return False
        if self.is_glob:
            return fnmatch.fnmatchcase(model, self.model)
        return model == self.model

    def model_price_values(self, service_tier: str | None) -> dict[str, object]:
        """genai-prices price keys -> Decimal or ``TieredPrices``: the entry, then its tier."""
        from genai_prices.types import Tier, TieredPrices

        out: dict[str, object] = {}
        tiers = dict(self.service_tiers)
        for rates in (self.rates, tiers.get(service_tier or "", ())):
            for key, rate in rates:
                price_key, scale = RATE_KEYS[key]
                base = rate.base * scale
                if rate.tiers:
                    out[price_key] = TieredPrices(base, [Tier(s, p * scale) for s, p in rate.tiers])
                else:
                    out[price_key] = base
        return out


@dataclass(frozen=True, slots=True)
class PriceFile:
    """A parsed price file: its entries, its provider map, and one message per problem."""

    overrides: list[Override] = field(default_factory=list)
    providers: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def load_price_file(path: str | os.PathLike[str]) -> tuple[list[Override], list[str]]:
    """Parse a price file: (valid overrides in file order, one error message per problem)."""
    parsed = read_price_file(path)
    return parsed.overrides, parsed.errors


def read_price_file(path: str | os.PathLike[str]) -> PriceFile:
    """Parse a price file: entries, the ``providers:`` map, one message per problem."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        reason = e.strerror or str(e)
        return PriceFile(
            errors=[f"{name}: cannot read the price file: {reason} (fix: point {_env()} at a readable file)"]
        )
    try:
        root = _compose(name, text)
    except _FileError as e:
        return PriceFile(errors=[str(e)])
    if root is None:
        return PriceFile(
            errors=[f"{name}: the price file is empty (fix: add a `models:` list, e.g. {_EXAMPLE})"]
        )
    parser = _Parser(name)
    overrides = list(parser.file(root))
    return PriceFile(overrides, parser.providers, parser.errors)


def check_price_file(path: str | os.PathLike[str]) -> PriceFile:
    """`read_price_file`, and every entry checked against the bundled prices: an entry for a
    model genai-prices does not know must price input and output, and each provider in the
    ``providers:`` map must be one genai-prices knows."""
    from genai_prices import data_snapshot
    from genai_prices.data_snapshot import find_provider_by_id

    from otel_tokens.pricing.providers import price_provider_id

    parsed = read_price_file(path)
    snapshot = data_snapshot.get_snapshot()
    errors = list(parsed.errors)
    for host, provider in parsed.providers.items():
        if find_provider_by_id(snapshot.providers, price_provider_id(provider)) is None:
            errors.append(
                f"{os.fspath(path)}: providers.{host} names {provider!r}, a provider genai-prices does "
                "not know (fix: use an id such as groq, deepseek, openrouter, azure, google)"
            )
    for o in parsed.overrides:
        missing = [k for k in ("input_per_mtok", "output_per_mtok") if o.rate(k) is None]
        if not missing or o.is_glob:
            continue
        try:
            pid = price_provider_id(o.provider) if o.provider else None
            if pid is not None:
                try:
                    snapshot.find_provider(None, pid, None)
                except LookupError:
                    pid = None
            snapshot.find_provider_model(o.model, None, pid, None)
        except LookupError:
            errors.append(
                f"{o.source}: genai-prices does not know {o.model!r}, so the entry must give "
                f"{' and '.join(missing)} (fix: add `{missing[0]}: {_RATE_EXAMPLES[missing[0]]}`)"
            )
    return PriceFile(parsed.overrides, parsed.providers, errors)


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
        self.providers: dict[str, str] = {}

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
            elif k == "providers":
                self.provider_map(value)
            else:
                self.error(
                    key, f"unknown top-level key {k!r} (fix: the top-level keys are `models` and `providers`)"
                )
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

    def provider_map(self, node: Node) -> None:
        from otel_tokens.pricing.providers import parse_provider_map

        if not isinstance(node, MappingNode):
            self.error(node, 'providers must be a mapping (fix: e.g. `providers: {"llm-gw:8443": groq}`)')
            return
        for key, value in node.value:
            raw = {_text(key): value.value if isinstance(value, ScalarNode) and value.tag != _NULL else None}
            mapping, errors = parse_provider_map(raw, self.where(key))
            self.errors.extend(errors)
            self.providers.update(mapping)

    def entry(self, at: str, node: Node) -> Override | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{at} must be a mapping (fix: e.g. `- model: gpt-4o` with its rates below)")
            return None
        fields, ok = self.fields(at, node, (*_NAMES, *RATE_KEYS, "service_tiers"))
        if "model" not in fields:
            self.error(node, f"{at} is missing `model` (fix: add `model: gpt-4o`)")
            ok = False
        model = self.name_field(at, "model", fields.get("model"))
        provider = self.name_field(at, "provider", fields.get("provider"))
        rates = self.rates(at, fields)
        tiers: list[tuple[str, tuple[tuple[str, Rate], ...]]] = []
        tiers_node = fields.get("service_tiers")
        if tiers_node is not None:
            if not isinstance(tiers_node, MappingNode):
                self.error(
                    tiers_node,
                    f"{at}.service_tiers must be a mapping (fix: e.g. `flex: {{input_per_mtok: 1}}`)",
                )
                ok = False
            else:
                for key, value in tiers_node.value:
                    tier = _text(key).strip()
                    where = f"{at}.service_tiers.{tier}"
                    if not isinstance(value, MappingNode):
                        self.error(
                            value, f"{where} must be a mapping of rates (fix: e.g. `input_per_mtok: 1`)"
                        )
                        ok = False
                        continue
                    sub, sub_ok = self.fields(where, value, tuple(RATE_KEYS))
                    ok = ok and sub_ok
                    tier_rates = self.rates(where, sub)
                    if tier_rates is None:
                        ok = False
                    else:
                        tiers.append((tier, tier_rates))
        if not ok or model is None or rates is None:
            return None
        if "provider" in fields and provider is None:
            return None
        if not rates and not tiers:
            self.error(node, f"{at} names no rate (fix: add e.g. `input_per_mtok: 2.50`)")
            return None
        return Override(model, provider, rates, tuple(tiers), self.where(node))

    def fields(self, at: str, node: MappingNode, allowed: tuple[str, ...]) -> tuple[dict[str, Node], bool]:
        fields: dict[str, Node] = {}
        ok = True
        for key, value in node.value:
            k = _text(key)
            if k not in allowed:
                self.error(key, f"{at} has unknown key {k!r} (fix: use only {', '.join(allowed)})")
                ok = False
            elif k in fields:
                self.error(key, f"{at}.{k} is given twice (fix: keep one)")
                ok = False
            else:
                fields[k] = value
        return fields, ok

    def rates(self, at: str, fields: dict[str, Node]) -> tuple[tuple[str, Rate], ...] | None:
        out: list[tuple[str, Rate]] = []
        ok = True
        for key in RATE_KEYS:
            node = fields.get(key)
            if node is None:
                continue
            rate = self.rate(at, key, node)
            if rate is None:
                ok = False
            else:
                out.append((key, rate))
        return tuple(out) if ok else None

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

    def rate(self, at: str, key: str, node: Node) -> Rate | None:
        if isinstance(node, MappingNode):
            return self.tiered(f"{at}.{key}", key, node)
        value = _decimal(node)
        if value is None:
            self.bad_number(f"{at}.{key}", key, node)
            return None
        return Rate(value)

    def tiered(self, at: str, key: str, node: MappingNode) -> Rate | None:
        example = f"(fix: e.g. `{key}: {{base: 3, tiers: [{{start: 200000, price: 6}}]}}`)"
        parts = {_text(k): v for k, v in node.value}
        unknown = set(parts) - {"base", "tiers"}
        if unknown or "base" not in parts or "tiers" not in parts:
            self.error(node, f"{at} must be a number or a mapping of `base` and `tiers` {example}")
            return None
        base = _decimal(parts["base"])
        if base is None:
            self.bad_number(f"{at}.base", key, parts["base"])
            return None
        tiers_node = parts["tiers"]
        if not isinstance(tiers_node, SequenceNode) or not tiers_node.value:
            self.error(tiers_node, f"{at}.tiers must be a non-empty list {example}")
            return None
        tiers: list[tuple[int, Decimal]] = []
        for i, t in enumerate(tiers_node.value):
            fields = {_text(k): v for k, v in t.value} if isinstance(t, MappingNode) else {}
            start = fields.get("start")
            price = _decimal(fields["price"]) if "price" in fields else None
            start_v = _decimal(start) if start is not None else None
            if (
                set(fields) != {"start", "price"}
                or price is None
                or start_v is None
                or start_v != int(start_v)
            ):
                self.error(
                    t,
                    f"{at}.tiers[{i}] must be `{{start: <input tokens>, price: <rate>}}` with a "
                    f"whole non-negative start and a non-negative price {example}",
                )
                return None
            if tiers and int(start_v) <= tiers[-1][0]:
                self.error(
                    t, f"{at}.tiers[{i}] must start above the tier before it (fix: sort them by start)"
                )
                return None
            tiers.append((int(start_v), price))
        return Rate(base, tuple(tiers))

    def bad_number(self, at: str, key: str, node: Node) -> None:
        if not isinstance(node, ScalarNode):
            shown = _kind(node)
        elif node.tag == _NULL:
            shown = "nothing"
        else:
            shown = repr(node.value)
        self.error(
            node,
            f"{at} must be a non-negative number, got {shown} (fix: use a number like {_RATE_EXAMPLES[key]})",
        )


_NULL = "tag:yaml.org,2002:null"
_NAME_EXAMPLES = {"model": "gpt-4o", "provider": "openai"}


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
