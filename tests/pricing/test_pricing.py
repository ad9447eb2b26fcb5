"""The pricer equals genai-prices exactly, is fast per call, honours the user price file."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

from otel_tokens import names
from otel_tokens.pricing import cards
from otel_tokens.pricing import pricer as pricing
from otel_tokens.pricing.price_file import Rate
from otel_tokens.pricing.pricer import Price, Pricer, default_pricer, load_price_file, reset_default_pricer
from otel_tokens.record import Usage, normalised_usage

D = Decimal


def genai_total(provider: str, model: str, u: Usage, when: datetime | None = None) -> Decimal:
    """The reference: genai-prices' slow path on the same usage (input includes the cache)."""
    usage = genai_prices.Usage(
        input_tokens=u.input_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        output_tokens=u.output_tokens,
        output_reasoning_tokens=u.reasoning_tokens,
    )
    return genai_prices.calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=when
    ).total_price


FULL = Usage(12_345, 678, 0, 0, 0)
CACHE_READ = Usage(12_345, 678, 10_240, 0, 0)
CACHE_WRITE = Usage(12_345, 678, 0, 9_000, 0)
CACHE_BOTH = Usage(12_345, 678, 2_048, 9_000, 0)
REASONING = Usage(3_000, 5_000, 1_024, 0, 4_096)
ZERO = Usage(0, 0, 0, 0, 0)
INPUT_ONLY = Usage(1_000_000, 0)
OUTPUT_ONLY = Usage(0, 1_000_000)
HUGE = Usage(1_999_999_999, 123_456_789, 1_000_000_000, 999_999_999, 100_000_000)

ROWS = [
    (provider, model, usage)
    for provider, model in [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06"),
        ("openai", "GPT-4o-Mini"),
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("openai", "gpt-5"),
        ("openai", "o3-mini"),
        ("anthropic", "claude-3-7-sonnet-20250219"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-haiku"),
        ("anthropic", "claude-3-5-haiku-20241022"),
        ("anthropic", "claude-opus-4-6"),
        ("google", "gemini-2.5-pro"),
        ("perplexity", "sonar"),  # per-request fee
        ("perplexity", "sonar-deep-research"),  # reasoning priced apart from output
    ]
    for usage in (FULL, CACHE_READ, CACHE_WRITE, CACHE_BOTH, REASONING, ZERO, INPUT_ONLY, OUTPUT_ONLY, HUGE)
] + [
    ("openai", "text-embedding-3-small", Usage(8_191, 0)),
    ("openai", "text-embedding-3-small", ZERO),
    ("anthropic", "claude-sonnet-4-5", Usage(200_000, 1_000, 50_000, 10_000, 0)),  # at the tier edge
    ("anthropic", "claude-sonnet-4-5", Usage(200_001, 1_000, 50_000, 10_000, 0)),  # just above it
    ("google", "gemini-2.5-pro", Usage(200_001, 1_000, 100_000, 0, 500)),
]


@pytest.mark.parametrize(("provider", "model", "usage"), ROWS)
def test_equals_genai_prices_exactly(provider: str, model: str, usage: Usage) -> None:
    got = Pricer().price(provider, model, usage)
    assert got is not None
    assert got.total == genai_total(provider, model, usage)


# Hand-computed from the published per-MTok rates (an independent check of the above).
@pytest.mark.parametrize(
    ("provider", "model", "usage", "total", "savings"),
    [
        # gpt-4o: $2.50 in, $1.25 cached in, $10 out
        ("openai", "gpt-4o", Usage(1_000_000, 1_000_000), D("12.5"), D(0)),
        ("openai", "gpt-4o", Usage(2_000, 100, 1_000), D("0.00475"), D("0.00125")),
        # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out
        ("openai", "gpt-4o-mini", Usage(1_370, 155, 1_280), D("0.0002025"), D("0.000096")),
        # gpt-5: $1.25 in, $0.125 cached, $10 out (reasoning is output)
        ("openai", "gpt-5", Usage(1_000, 2_000, 0, 0, 1_500), D("0.02125"), D(0)),
        # text-embedding-3-small: $0.02 in
        ("openai", "text-embedding-3-small", Usage(1_000_000, 0), D("0.02"), D(0)),
        # claude-3-7-sonnet: $3 in, $0.30 cache read, $3.75 cache write, $15 out
        (
            "anthropic",
            "claude-3-7-sonnet-20250219",
            Usage(10_000, 1_000, 4_000, 2_000),
            D("0.0357"),
            D("0.0108"),
        ),
        # claude-sonnet-4-5 long context: above 200k input every token pays the tier rate
        ("anthropic", "claude-sonnet-4-5", Usage(200_000, 1_000, 50_000, 10_000), D("0.4875"), D("0.135")),
        ("anthropic", "claude-sonnet-4-5", Usage(200_001, 1_000, 50_000, 10_000), D("0.967506"), D("0.27")),
    ],
)
def test_hand_computed(provider: str, model: str, usage: Usage, total: Decimal, savings: Decimal) -> None:
    assert Pricer().price(provider, model, usage) == Price(total, savings)


@pytest.mark.parametrize(
    ("provider", "model", "usage"),
    [(p, m, u) for p, m, u in ROWS if u.cache_read_tokens and p in ("openai", "anthropic", "google")],
)
def test_cache_savings_is_the_input_rate_price_of_cache_reads_minus_their_price(
    provider: str, model: str, usage: Usage
) -> None:
    got = Pricer().price(provider, model, usage)
    as_uncached = Usage(
        usage.input_tokens, usage.output_tokens, 0, usage.cache_write_tokens, usage.reasoning_tokens
    )
    assert got is not None
    assert got.cache_savings == genai_total(provider, model, as_uncached) - genai_total(
        provider, model, usage
    )
    assert got.cache_savings > 0


def test_every_bundled_model_prices_like_genai_prices() -> None:
    """All ~2,300 bundled models, so no price key the rate card ignores can hide a cost."""
    pricer = Pricer()
    usages = (CACHE_BOTH, REASONING, Usage(250_000, 9_000, 30_000, 20_000, 1_000))
    priced = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            for usage in usages:
                got = pricer.price(provider.id, model.id, usage)
                try:
                    want: Decimal | None = genai_total(provider.id, model.id, usage)
                except LookupError:  # a few model ids do not match their own match rules
                    want = None
                assert (got and got.total) == want, (provider.id, model.id, usage)
                priced += got is not None
    assert priced > 6_000


EXTRAS = Usage(
    250_000,
    9_000,
    30_000,
    20_000,
    1_000,
    cache_write_1h_tokens=5_000,
    input_audio_tokens=4_000,
    output_audio_tokens=700,
    input_image_tokens=3_000,
    output_image_tokens=600,
    web_searches=3,
)


def test_every_bundled_model_prices_every_dimension_and_service_tier_like_genai_prices() -> None:
    """1-hour writes, audio, image, web searches and each service tier / speed genai-prices
    knows, for every bundled model: equal to ``calc_price`` wherever genai-prices accepts it."""
    pricer = Pricer()
    checked = 0
    for provider in get_snapshot().providers:
        for model in provider.models:
            # the standard price, and each service-tier / speed variant (batch, route: not ours)
            whens = [v.when for v in model.price_variants or ()]
            contexts = dict.fromkeys(
                [(None, None), *((w.get("service_tier"), w.get("speed")) for w in whens)]
            )
            for tier, speed in contexts:
                ctx = {k: v for k, v in (("service_tier", tier), ("speed", speed)) if v}
                try:
                    want = genai_prices.calc_price(
                        cards.genai_usage(EXTRAS),
                        model.id,
                        provider_id=provider.id,
                        price_context=ctx or None,
                    ).total_price
                except (LookupError, ValueError):
                    continue  # unknown id, or usage genai-prices itself rejects for this model
                got = pricer.price(provider.id, model.id, EXTRAS, tier, speed)
                assert got is not None and got.total == want, (provider.id, model.id, ctx)
                checked += 1
    assert checked > 2_000


@pytest.mark.parametrize(
    ("provider", "model", "details"),
    [
        ("google", "gemini-2.5-flash", {"cache_audio_read_tokens": 1_881, "input_audio_tokens": 1_917}),
        ("google", "gemini-2.5-pro", {"input_video_tokens": 15_780, "input_tool_tokens": 764}),
        ("openai", "gpt-4o-audio-preview", {"input_audio_tokens": 3_000}),
    ],
)
def test_other_genai_prices_usage_keys_in_details(provider: str, model: str, details: dict[str, int]) -> None:
    u = normalised_usage(
        input_tokens=20_000, output_tokens=500, cache_read_tokens=5_000, reasoning_tokens=100, details=details
    )
    want = genai_prices.calc_price(cards.genai_usage(u), model, provider_id=provider).total_price
    got = Pricer().price(provider, model, u)
    assert got is not None and got.total == want
    if model == "gemini-2.5-flash":  # it prices audio apart: the details change the price
        plain = normalised_usage(
            input_tokens=20_000, output_tokens=500, cache_read_tokens=5_000, reasoning_tokens=100
        )
        other = Pricer().price(provider, model, plain)
        assert other is not None and other.total != got.total


@pytest.mark.parametrize(
    ("provider", "model", "same_as"),
    [
        ("aws.bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", ("aws", None)),
        ("gcp.gemini", "gemini-2.5-flash", ("google", None)),
        ("gcp.gemini", "models/gemini-2.5-flash", ("google", "gemini-2.5-flash")),
        ("some.gateway", "gpt-4o", ("openai", None)),  # unknown provider: found by model name
        ("openai", "openai/gpt-4o", ("openai", "gpt-4o")),
    ],
)
def test_provider_names_map_to_genai_prices(
    provider: str, model: str, same_as: tuple[str, str | None]
) -> None:
    got = Pricer().price(provider, model, CACHE_READ)
    assert got is not None
    assert got.total == genai_total(same_as[0], same_as[1] or model, CACHE_READ)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "this-model-does-not-exist"),
        ("openai", "claude-3-7-sonnet-20250219"),  # a known model, at the wrong provider
        ("openai", None),
        ("openai", ""),
        ("nobody", "nothing-at-all"),
    ],
)
def test_unknown_model_is_unpriced(provider: str, model: str | None) -> None:
    assert Pricer().price(provider, model, FULL) is None


def test_lookups_run_once_per_model_including_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = pricing._lookup

    def counting(provider_id: str, model: str) -> object:
        calls.append(model)
        return real(provider_id, model)

    monkeypatch.setattr(pricing, "_lookup", counting)
    pricer = Pricer()
    for _ in range(3):
        pricer.price("openai", "gpt-4o", FULL)
        pricer.price("openai", "unknown-model", FULL)
    assert calls == ["gpt-4o", "unknown-model"]


def test_cache_is_bounded() -> None:
    pricer = Pricer(max_models=8)
    for i in range(100):
        pricer.price("openai", f"unknown-{i}", FULL)
    assert len(pricer._cards) == 8


def _clock_at(moments: list[datetime]) -> Callable[[], float]:
    return lambda: moments[0].timestamp()


@pytest.mark.parametrize(
    ("provider", "model", "before", "after", "usage"),
    [
        # claude-opus-4-6 drops its long-context tier from 2026-03-13 (a StartDateConstraint)
        (
            "anthropic",
            "claude-opus-4-6",
            datetime(2026, 3, 12, 23, 30, tzinfo=UTC),
            datetime(2026, 3, 13, 0, 0, 1, tzinfo=UTC),
            Usage(300_000, 2_000, 100_000, 20_000),
        ),
        # deepseek-chat is cheaper off-peak (16:30-00:30 UTC, a TimeOfDateConstraint)
        (
            "deepseek",
            "deepseek-chat",
            datetime(2026, 6, 1, 16, 29, tzinfo=UTC),
            datetime(2026, 6, 1, 16, 31, tzinfo=UTC),
            Usage(10_000, 2_000, 4_000),
        ),
    ],
)
def test_time_dependent_prices_follow_the_clock(
    provider: str, model: str, before: datetime, after: datetime, usage: Usage
) -> None:
    now = [before]
    pricer = Pricer(clock=_clock_at(now))
    first = pricer.price(provider, model, usage)
    now[0] = after  # well within the hour: the card must expire at the price change
    second = pricer.price(provider, model, usage)
    assert first is not None and second is not None
    assert first.total == genai_total(provider, model, usage, before)
    assert second.total == genai_total(provider, model, usage, after)
    assert first.total != second.total


def test_a_card_that_disagrees_with_genai_prices_is_never_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mp = ModelPrice(input_mtok=D(2), cache_read_mtok=D("0.5"), output_mtok=D(3))
    card = cards.compile_card(mp, float("inf"), "test model")
    # 5,000 uncached * 2 + 5,000 cached * 0.5 + 1,000 * 3, per MTok
    assert card is not None and card.price(Usage(10_000, 1_000, 5_000)) == Price(D("0.0155"), D("0.0075"))
    real = cards._rates

    def off_by_a_fee(resolved: object, total_input: int) -> cards.Rates:
        return dataclasses.replace(real(resolved, total_input), per_call=D("0.001"))  # type: ignore[arg-type]

    monkeypatch.setattr(cards, "_rates", off_by_a_fee)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        assert cards.compile_card(mp, float("inf"), "test model") is None
    assert "cannot compile the price of test model" in caplog.text


# --- user price file -----------------------------------------------------------------------

OVERRIDES_YAML = """\
# negotiated and self-hosted prices
models:
  - model: gpt-4o
    provider: openai
    input_per_mtok: 2.00
    output_per_mtok: 8.00
    cache_read_per_mtok: 0.50
    cache_write_per_mtok: 2.50
  - model: my-llama-70b
    input_per_mtok: 0
    output_per_mtok: 0
  - model: claude-*
    provider: anthropic
    input_per_mtok: 1
    output_per_mtok: 5
  - model: claude-3-5-haiku
    input_per_mtok: 0.5
    output_per_mtok: 2.5
"""


@pytest.fixture
def overrides(tmp_path: Path) -> Pricer:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDES_YAML)
    return Pricer(str(path))


@pytest.mark.parametrize(
    ("provider", "model", "usage", "expected"),
    [
        # override wins: 5,000*2 + 4,000*0.5 + 1,000*2.5 + 1,000*8 per MTok; saves 4,000*1.5
        ("openai", "gpt-4o", Usage(10_000, 1_000, 4_000, 1_000), Price(D("0.0225"), D("0.006"))),
        ("openai", "GPT-4o", Usage(10_000, 1_000, 4_000, 1_000), Price(D("0.0225"), D("0.006"))),
        # self-hosted, any provider: free, and still priced (not None)
        ("openai", "my-llama-70b", Usage(10_000, 1_000, 4_000), Price(D(0), D(0))),
        ("vllm", "My-Llama-70B", FULL, Price(D(0), D(0))),
        # glob; an entry changes only the rates it names: the bundled cache rates stay
        # (4,000 uncached * 1 + 4,000 read * 0.30 + 2,000 written * 3.75 + 1,000 * 5, per MTok)
        (
            "anthropic",
            "claude-3-7-sonnet-20250219",
            Usage(10_000, 1_000, 4_000, 2_000),
            Price(D("0.0177"), D("0.0028")),
        ),
        # an exact name beats a glob, even one with a provider
        ("anthropic", "claude-3-5-haiku", Usage(10_000, 1_000), Price(D("0.0075"), D(0))),
    ],
)
def test_overrides(overrides: Pricer, provider: str, model: str, usage: Usage, expected: Price) -> None:
    assert overrides.price(provider, model, usage) == expected


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("azure.ai.openai", "gpt-4o"),  # the gpt-4o override is for provider openai only
        ("google", "claude-3-5-haiku-20241022"),  # exact names do not match dated snapshots
        ("openai", "gpt-4o-mini"),
    ],
)
def test_models_without_an_override_keep_bundled_prices(overrides: Pricer, provider: str, model: str) -> None:
    got = overrides.price(provider, model, CACHE_BOTH)
    assert got is not None and got == Pricer().price(provider, model, CACHE_BOTH)


def test_load_price_file_returns_overrides(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(OVERRIDES_YAML)
    found, errors = load_price_file(path)
    assert errors == []
    rates = [
        (o.model, o.provider, o.rate("input_per_mtok"), o.rate("cache_read_per_mtok"), o.source)
        for o in found
    ]
    assert rates == [
        ("gpt-4o", "openai", Rate(D("2.00")), Rate(D("0.50")), f"{path}:3"),
        ("my-llama-70b", None, Rate(D(0)), None, f"{path}:9"),
        ("claude-*", "anthropic", Rate(D(1)), None, f"{path}:12"),
        ("claude-3-5-haiku", None, Rate(D("0.5")), None, f"{path}:16"),
    ]


def test_json_price_file_with_tabs_and_exponents(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{\n\t"models": [\n\t\t{"model": "gpt-4o", "input_per_mtok": 2, "output_per_mtok": 8e0}\n\t]\n}'
    )
    pricer = Pricer(str(path))
    assert pricer.price("openai", "gpt-4o", Usage(1_000_000, 1_000_000)) == Price(D(10), D(0))


YAML_ENTRY = "models:\n  - model: m\n"
ALLOWED = (
    "model, provider, input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok, "
    "cache_write_1h_per_mtok, reasoning_per_mtok, input_audio_per_mtok, output_audio_per_mtok, "
    "input_image_per_mtok, output_image_per_mtok, web_search_per_k, request_fee, service_tiers"
)
EXAMPLE = r"models:\n  - model: gpt-4o\n    input_per_mtok: 2.50\n    output_per_mtok: 10.00"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "prices.yaml",
            YAML_ENTRY + "    input_per_mtok: 1\n    output_per_mtok: abc\n",
            [
                ":4: models[0].output_per_mtok must be a non-negative number, got 'abc' "
                "(fix: use a number like 10.00)"
            ],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    input_per_mtok: -1\n    output_per_mtok: 1\n",
            [
                ":3: models[0].input_per_mtok must be a non-negative number, got '-1' "
                "(fix: use a number like 2.50)"
            ],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    input_per_mtok:\n    output_per_mtok: .inf\n",
            [
                ":3: models[0].input_per_mtok must be a non-negative number, got nothing "
                "(fix: use a number like 2.50)",
                ":4: models[0].output_per_mtok must be a non-negative number, got '.inf' "
                "(fix: use a number like 10.00)",
            ],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    provider: openai\n",
            [":2: models[0] names no rate (fix: add e.g. `input_per_mtok: 2.50`)"],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    input_per_mtok: {base: 1, tiers: [{start: 10, price: x}]}\n",
            [
                ":3: models[0].input_per_mtok.tiers[0] must be `{start: <input tokens>, price: <rate>}` "
                "with a whole non-negative start and a non-negative price "
                "(fix: e.g. `input_per_mtok: {base: 3, tiers: [{start: 200000, price: 6}]}`)"
            ],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    service_tiers:\n      flex: {input_per_mtok: -1}\n",
            [
                ":4: models[0].service_tiers.flex.input_per_mtok must be a non-negative number, got '-1' "
                "(fix: use a number like 2.50)"
            ],
        ),
        (
            "prices.yaml",
            "providers:\n  https://gw/v1: groq\nmodels: []\n",
            [
                ":2: key 'https://gw/v1' must be a host or host:port, not a URL "
                '(fix: e.g. {"llm-gw.internal:8443": "groq"})'
            ],
        ),
        (
            "prices.yaml",
            YAML_ENTRY + "    input_per_mtok: 1\n    ouput_per_mtok: 1\n",
            [f":4: models[0] has unknown key 'ouput_per_mtok' (fix: use only {ALLOWED})"],
        ),
        (
            "prices.yaml",
            "models:\n  - model: ''\n    input_per_mtok: 1\n    output_per_mtok: 1\n    input_per_mtok: 2\n",
            [
                ":5: models[0].input_per_mtok is given twice (fix: keep one)",
                ":2: models[0].model must be a non-empty name (fix: e.g. `model: gpt-4o`)",
            ],
        ),
        (
            "prices.yaml",
            "models:\n  - gpt-4o\n",
            [":2: models[0] must be a mapping (fix: e.g. `- model: gpt-4o` with its rates below)"],
        ),
        (
            "prices.yaml",
            "models: {}\n",
            [":1: `models` must be a list of entries (fix: start each entry with `- model: ...`)"],
        ),
        (
            "prices.yaml",
            "- model: m\n",
            [f":1: the price file must be a mapping with a `models:` list (fix: e.g. {EXAMPLE})"],
        ),
        (
            "prices.yaml",
            "model:\n  - model: m\n",
            [
                ":1: unknown top-level key 'model' (fix: the top-level keys are `models` and `providers`)",
                f":1: missing the `models:` list (fix: e.g. {EXAMPLE})",
            ],
        ),
        (
            "prices.yaml",
            "# nothing yet\n",
            [f": the price file is empty (fix: add a `models:` list, e.g. {EXAMPLE})"],
        ),
        (
            "prices.yaml",
            "models:\n  - model: m\n   input_per_mtok: 1\n",
            [
                ":3: invalid YAML: expected <block end>, but found '<block mapping start>' "
                "(fix: check the indentation and quoting near that line)"
            ],
        ),
        (
            "prices.json",
            '{"models": [\n  {"model": "m", "input_per_mtok": 1,}\n]}',
            [
                ":2: invalid JSON: Expecting property name enclosed in double quotes at column 38 "
                "(fix: check quotes, commas and brackets near that line)"
            ],
        ),
        (
            "prices.json",
            '{"models": [\n  {"model": "m",\n   "input_per_mtok": "1.5x", "output_per_mtok": 1}\n]}',
            [
                ":3: models[0].input_per_mtok must be a non-negative number, got '1.5x' "
                "(fix: use a number like 2.50)"
            ],
        ),
    ],
)
def test_malformed_price_file_errors_name_file_line_and_fix(
    tmp_path: Path, name: str, text: str, expected: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    found, errors = load_price_file(path)
    assert found == []
    assert errors == [f"{path}{e}" for e in expected]


def test_missing_price_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert load_price_file(path) == (
        [],
        [
            f"{path}: cannot read the price file: No such file or directory "
            f"(fix: point {names.ENV_PRICES} at a readable file)"
        ],
    )


def test_a_bad_entry_is_reported_once_and_the_rest_keeps_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  - model: gpt-4o\n"
        "    input_per_mtok: 2.00\n"
        "    output_per_mtok: 8.00\n"
        "  - model: gpt-4o-mini\n"
        "    input_per_mtok: 1\n"
        "    output_per_mtok: abc\n"
    )
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        pricer = Pricer(str(path))
        for _ in range(50):
            good = pricer.price("openai", "gpt-4o", Usage(1_000_000, 1_000_000))
            bundled = pricer.price("openai", "gpt-4o-mini", CACHE_READ)
    assert good == Price(D(10), D(0))
    assert bundled is not None and bundled.total == genai_total("openai", "gpt-4o-mini", CACHE_READ)
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "otel_tokens",
            logging.WARNING,
            f"otel-tokens price file: {path}:7: models[1].output_per_mtok must be a non-negative number, "
            "got 'abc' (fix: use a number like 10.00); the rest of the prices keep working",
        )
    ]


@pytest.mark.parametrize("content", [None, "models: [oops\n"])
def test_a_broken_or_missing_file_leaves_bundled_prices_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | None
) -> None:
    path = tmp_path / "prices.yaml"
    if content is not None:
        path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        pricer = Pricer(str(path))
        got = pricer.price("anthropic", "claude-3-7-sonnet-20250219", CACHE_BOTH)
    assert got is not None and got.total == genai_total("anthropic", "claude-3-7-sonnet-20250219", CACHE_BOTH)
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_default_pricer_reads_the_environment_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - model: gpt-4o\n    input_per_mtok: 1\n    output_per_mtok: 1\n")
    monkeypatch.setenv(names.ENV_PRICES, str(path))
    reset_default_pricer()
    try:
        first = default_pricer()
        assert default_pricer() is first
        assert first.price("openai", "gpt-4o", Usage(1_000_000, 0)) == Price(D(1), D(0))
        monkeypatch.delenv(names.ENV_PRICES)
        reset_default_pricer()
        bundled = default_pricer()
        assert bundled is not first
        assert bundled.price("openai", "gpt-4o", Usage(1_000_000, 0)) == Price(D("2.5"), D(0))
    finally:
        reset_default_pricer()


# --- never raises ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "same_as"),
    [
        (Usage(-5, -3, -1, -2, -4), ZERO),
        (Usage(100, 10, 500, 0, 0), Usage(500, 10, 500, 0, 0)),  # cache read above input: input raised
        (Usage(100, 10, 0, 0, 50), Usage(100, 50, 0, 0, 50)),  # reasoning above output
    ],
)
def test_inconsistent_usage_is_clamped_not_raised(usage: Usage, same_as: Usage) -> None:
    pricer = Pricer()
    assert pricer.price("anthropic", "claude-sonnet-4-5", usage) == pricer.price(
        "anthropic", "claude-sonnet-4-5", same_as
    )


@pytest.mark.parametrize(
    ("provider", "model", "usage"),
    [
        ("openai", "gpt-4o", None),
        ("openai", "gpt-4o", "garbage"),
        ("openai", 42, FULL),
        (None, "gpt-4o", FULL),
        ("openai", "gpt-4o", Usage(None, None)),
    ],
)
def test_garbage_gives_none_or_a_price_never_an_exception(
    provider: object, model: object, usage: object
) -> None:
    result = Pricer().price(provider, model, usage)
    assert result is None or isinstance(result, Price)
