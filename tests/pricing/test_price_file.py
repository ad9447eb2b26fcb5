"""The price file expresses what bundled prices can, and an entry changes only what it names.

Expected totals are computed by hand from the published per-MTok rates (or by genai-prices'
own ``ModelPrice.calc_price`` over the rates written out), never by our pricer.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest
from genai_prices.types import ModelPrice, Tier, TieredPrices

from otel_tokens import names as n
from otel_tokens.pricing.price_file import check_price_file, read_price_file
from otel_tokens.pricing.pricer import Pricer
from otel_tokens.record import Usage

D = Decimal

FILE = """\
providers:
  llm-gw.internal:8443: groq
  10.0.0.7: deepseek
models:
  - model: gpt-5                 # negotiated input only: everything else stays bundled
    provider: openai
    input_per_mtok: 1.00
  - model: claude-sonnet-4-5     # output only: the long-context tiers of input stay
    output_per_mtok: 14
  - model: gpt-4o                # no cache_read_per_mtok: the bundled cache discount stays
    input_per_mtok: 2.00
    output_per_mtok: 8.00
  - model: claude-sonnet-4-0     # the retired 1M-context tier, written out
    input_per_mtok:
      base: 3
      tiers: [{start: 200000, price: 6}]
    output_per_mtok: {base: 15, tiers: [{start: 200000, price: 22.5}]}
  - model: house-model           # not in genai-prices: every rate it has
    input_per_mtok: 1
    output_per_mtok: 4
    cache_read_per_mtok: 0.1
    cache_write_per_mtok: 1.25
    cache_write_1h_per_mtok: 2
    web_search_per_k: 10
    request_fee: 0.002
    service_tiers:
      flex: {input_per_mtok: 0.5, output_per_mtok: 2}
"""


@pytest.fixture
def pricer(tmp_path: Path) -> Pricer:
    path = tmp_path / "prices.yaml"
    path.write_text(FILE)
    return Pricer(str(path))


def _bundled(provider: str, model: str, u: Usage, tier: str | None = None) -> Decimal:
    usage = genai_prices.Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens or None,
        cache_write_tokens=u.cache_write_tokens or None,
    )
    ctx = {"service_tier": tier} if tier else None
    return genai_prices.calc_price(usage, model, provider_id=provider, price_context=ctx).total_price


def test_an_entry_changes_only_the_rate_it_names(pricer: Pricer) -> None:
    u = Usage(1_000_000, 1_000_000, 400_000)
    # gpt-5: $1.00 negotiated input (600k uncached), bundled $0.125 cache read, $10 output
    got = pricer.price("openai", "gpt-5", u)
    assert got is not None and got.total == D("0.6") + D("0.05") + D("10")
    # flex: the bundled flex variant ($0.0625 read, $5 out), the entry's input on top
    flex = pricer.price("openai", "gpt-5", u, "flex")
    assert flex is not None and flex.total == D("0.6") + D("0.025") + D("5")


def test_an_entry_keeps_the_bundled_tiers(pricer: Pricer) -> None:
    u = Usage(300_000, 1_000)
    got = pricer.price("anthropic", "claude-sonnet-4-5", u)
    # input above 200k pays the bundled $6 tier; output is the entry's flat $14
    assert got is not None and got.total == D("1.8") + D("0.014")


def test_a_missing_cache_read_rate_keeps_the_bundled_discount(pricer: Pricer) -> None:
    got = pricer.price("openai", "gpt-4o", Usage(10_000, 1_000, 8_000))
    # 2,000 at $2, 8,000 at the bundled $1.25 cache read, 1,000 at $8
    assert got is not None and got.total == D("0.004") + D("0.01") + D("0.008")
    assert got.cache_savings == D("0.006")


def test_tiers_in_the_file(pricer: Pricer) -> None:
    mp = ModelPrice(
        input_mtok=TieredPrices(D(3), [Tier(200_000, D(6))]),
        output_mtok=TieredPrices(D(15), [Tier(200_000, D("22.5"))]),
        cache_read_mtok=D("0.3"),
        cache_write_mtok=D("3.75"),
        cache_write_1h_mtok=D(6),
        web_searches_kcount=D(10),
    )
    for u in (Usage(300_000, 1_000), Usage(150_000, 1_000, 50_000)):
        got = pricer.price("anthropic", "claude-sonnet-4-0", u)
        want = mp.calc_price(
            genai_prices.Usage(
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                cache_read_tokens=u.cache_read_tokens or None,
            )
        )
        assert got is not None and got.total == want["total_price"]
    got = pricer.price("anthropic", "claude-sonnet-4-0", Usage(300_000, 1_000))
    assert got is not None and got.total == D("1.8225")


def test_every_rate_of_a_model_genai_prices_does_not_know(pricer: Pricer) -> None:
    u = Usage(100_000, 10_000, 20_000, 30_000, 0, cache_write_1h_tokens=10_000, web_searches=3)
    # 50k uncached * 1 + 20k * 0.1 + 20k 5-minute * 1.25 + 10k 1-hour * 2 + 10k out * 4,
    # per MTok; 3 searches at $10/1k; $0.002 a request
    want = D("0.05") + D("0.002") + D("0.025") + D("0.02") + D("0.04") + D("0.03") + D("0.002")
    got = pricer.price("vllm", "house-model", u)
    assert got is not None and got.total == want
    flex = pricer.price("vllm", "house-model", u, "flex")
    assert flex is not None and flex.total == want - D("0.025") - D("0.02")  # half input, half output


def test_models_without_an_entry_keep_their_bundled_price(pricer: Pricer) -> None:
    u = Usage(10_000, 1_000, 2_000)
    got = pricer.price("openai", "gpt-4o-mini", u, "priority")
    assert got is not None and got.total == _bundled("openai", "gpt-4o-mini", u, "priority")


def test_the_providers_map_of_the_file(pricer: Pricer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(n.ENV_PROVIDERS, raising=False)
    assert pricer.providers.resolve("openai", "llm-gw.internal", 8443, "/v1") == "groq"
    assert pricer.providers.resolve("openai", "10.0.0.7", 80) == "deepseek"
    monkeypatch.setenv(n.ENV_PROVIDERS, json.dumps({"llm-gw.internal:8443": "openrouter"}))
    assert pricer.providers.resolve("openai", "llm-gw.internal", 8443, "/v1") == "openrouter"  # env wins


def test_read_price_file_keeps_the_map_and_entries(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(FILE)
    parsed = read_price_file(path)
    assert parsed.errors == []
    assert parsed.providers == {"llm-gw.internal:8443": "groq", "10.0.0.7": "deepseek"}
    assert [o.model for o in parsed.overrides] == [
        "gpt-5",
        "claude-sonnet-4-5",
        "gpt-4o",
        "claude-sonnet-4-0",
        "house-model",
    ]


def test_check_knows_what_genai_prices_knows(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "providers:\n  gw:1: nobody-at-all\nmodels:\n"
        "  - model: my-own-model\n    input_per_mtok: 1\n"
        "  - model: gpt-4o\n    output_per_mtok: 9\n"
    )
    parsed = check_price_file(path)
    assert parsed.errors == [
        f"{path}: providers.gw:1 names 'nobody-at-all', a provider genai-prices does not know "
        "(fix: use an id such as groq, deepseek, openrouter, azure, google)",
        f"{path}:4: genai-prices does not know 'my-own-model', so the entry must give output_per_mtok "
        "(fix: add `output_per_mtok: 10.00`)",
    ]


def test_an_incomplete_entry_for_an_unknown_model_is_unpriced_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  - model: my-own-model\n    input_per_mtok: 1\n")
    pricer = Pricer(str(path))
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        assert pricer.price("openai", "my-own-model", Usage(10, 10)) is None
        assert pricer.price("openai", "my-own-model", Usage(10, 10), "flex") is None
    said = [r.getMessage() for r in caplog.records if "my-own-model" in r.getMessage()]
    assert len(said) == 1 and "needs input_per_mtok and output_per_mtok" in said[0]
