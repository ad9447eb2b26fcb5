"""µs per call: genai_prices.calc_price vs otel_tokens' Pricer.price (cached rate card).

Run: .venv/bin/python bench/bench_pricing.py
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from functools import partial

import genai_prices

from otel_tokens.pricing.cards import genai_usage
from otel_tokens.pricing.pricer import Pricer
from otel_tokens.record import Usage

# (provider, model, usage, service tier)
CASES: list[tuple[str, str, Usage, str | None]] = [
    ("openai", "gpt-4o", Usage(1_200, 350, 1_024, 0, 0), None),
    ("openai", "gpt-5", Usage(2_000, 900, 0, 0, 512), None),
    ("openai", "gpt-5", Usage(2_000, 900, 1_024, 0, 512), "flex"),  # a service-tier variant
    ("anthropic", "claude-sonnet-4-5", Usage(250_000, 800, 20_000, 5_000, 0), None),  # tiered
    ("anthropic", "claude-3-7-sonnet-20250219", Usage(5_000, 300, 1_000, 2_000, 100), None),
    # 1-hour cache writes and web searches
    ("anthropic", "claude-sonnet-4-5", Usage(9_000, 700, 0, 6_000, 0, 4_000, web_searches=3), None),
]


def _median_us(fn: Callable[[], object], number: int) -> float:
    runs = timeit.repeat(fn, number=number, repeat=7)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    pricer = Pricer()
    print(f"{'provider':<10} {'model':<28} {'tier':<6} {'calc_price µs':>14} {'Pricer µs':>10} {'ratio':>7}")
    for provider, model, u, tier in CASES:
        g = genai_usage(u)
        ctx = {"service_tier": tier} if tier else None
        slow_fn = partial(genai_prices.calc_price, g, model, provider_id=provider, price_context=ctx)
        ref = slow_fn().total_price
        got = pricer.price(provider, model, u, tier)
        assert got is not None and got.total == ref, (model, got, ref)
        slow = _median_us(slow_fn, 300)
        fast = _median_us(partial(pricer.price, provider, model, u, tier), 30_000)
        print(f"{provider:<10} {model:<28} {tier or '-':<6} {slow:>14.1f} {fast:>10.2f} {slow / fast:>6.0f}x")
    miss = _median_us(partial(pricer.price, "openai", "my-unknown-model", CASES[0][2]), 30_000)
    print(f"unknown model (cached miss): {miss:.2f} µs/call")


if __name__ == "__main__":
    main()
