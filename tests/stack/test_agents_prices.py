"""The collector's generated agent prices: genai-prices match rules as OTTL, rates equal to
genai-prices exactly, and every model of the agents' providers priced."""

from __future__ import annotations

import re

import pytest
from genai_prices import types as t

from otel_tokens.stack import agents

S = "m"


@pytest.mark.parametrize(
    ("clause", "ottl"),
    [
        (t.ClauseEquals(equals="GPT-4o"), 'm == "gpt-4o"'),
        (t.ClauseStartsWith(starts_with="gpt-4.1"), 'IsMatch(m, "^gpt-4\\\\.1")'),
        (t.ClauseEndsWith(ends_with="-mini"), 'IsMatch(m, "-mini$")'),
        (t.ClauseContains(contains="claude"), 'IsMatch(m, "claude")'),
        (t.ClauseRegex(regex="^o[134]"), 'IsMatch(m, "^o[134]")'),
        (t.ClauseRegex(regex="^(?!.*-tts)"), 'not IsMatch(m, "^(?:.*-tts)")'),
        (t.ClauseRegex(regex="a(?=b)"), None),  # RE2 has no lookahead: left out, hence unpriced
        (
            t.ClauseOr(or_=[t.ClauseEquals(equals="a"), t.ClauseStartsWith(starts_with="b")]),
            '((m == "a") or (IsMatch(m, "^b")))',
        ),
    ],
)
def test_match_clauses_as_ottl(clause: object, ottl: str | None) -> None:
    assert agents.match_condition(clause, S) == ottl


def _python_of(ottl: str, model: str) -> bool:
    """Evaluate a generated match condition in Python (the subset the generator emits)."""
    expr = ottl.replace(" or ", " | ").replace(" and ", " & ").replace("not IsMatch", "~IsMatch")
    expr = re.sub(r'IsMatch\(m, ("(?:[^"\\]|\\.)*")\)', r"_m(\1)", expr)
    expr = re.sub(r'm == ("(?:[^"\\]|\\.)*")', r"_eq(\1)", expr)
    env = {"_m": lambda p: _B(re.search(p, model) is not None), "_eq": lambda v: _B(model == v)}
    return bool(eval(expr, env))


class _B:
    def __init__(self, v: bool) -> None:
        self.v = v

    def __or__(self, o: _B) -> _B:
        return _B(self.v or o.v)

    def __and__(self, o: _B) -> _B:
        return _B(self.v and o.v)

    def __invert__(self) -> _B:
        return _B(not self.v)

    def __bool__(self) -> bool:
        return self.v


@pytest.mark.parametrize(
    "model",
    ["claude-sonnet-4-6", "claude-opus-5-5", "gpt-5.1-codex", "gpt-4o-mini", "o3", "gemini-2.5-pro",
     "gemini-2.5-flash", "gemini-2.5-flash-preview-tts"],
)  # fmt: skip
def test_first_match_is_genai_prices_model(model: str) -> None:
    from genai_prices import data_snapshot

    models, skipped = agents.known_models()
    assert skipped == []
    mine = next(
        (m for m in models if _python_of(m.match.replace(agents.a(agents.PRICE_MODEL), "m"), model)), None
    )
    snapshot = data_snapshot.get_snapshot()
    pid = {"claude": "anthropic", "gemini": "google"}.get(model.split("-")[0], "openai")
    _, info = snapshot.find_provider_model(model, None, pid, None)
    assert mine is not None and mine.model_id == info.id


def test_generated_rates_equal_genai_prices() -> None:
    """Every generated rate set, priced as the OTTL does, equals genai-prices' own calc_price."""
    from datetime import UTC, datetime

    from genai_prices import Usage, data_snapshot

    snapshot = data_snapshot.get_snapshot()
    models, _ = agents.known_models()
    checked = 0
    for m in models:
        try:
            _, info = snapshot.find_provider_model(m.model_id, None, agents.PROVIDERS[m.provider], None)
        except LookupError:
            continue  # an id its own rule does not match (e.g. "ft:gpt-4o"): matching is tested above
        if info.id != m.model_id:
            continue
        mp = info.get_prices(datetime.now(UTC))
        for inp, cr, cw, out, rs in ((12_345, 2_000, 300, 777, 100), (250_001, 100_000, 0, 9, 0)):
            usage = Usage(
                input_tokens=inp, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=out,
                output_reasoning_tokens=rs,
            )  # fmt: skip
            assert agents.cost_of(m.tiers, inp, out, cr, cw, rs) == mp.calc_price(usage)["total_price"], (
                m.price_id
            )
        checked += 1
    assert checked > 150
