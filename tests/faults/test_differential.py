"""Differential fuzzing: 10,000 hostile responses, the same app with and without otel-tokens.

Every case is sent by the real openai / anthropic SDK (sync and async) over real HTTP to a raw
loopback server, first uninstrumented, then with ``otel_tokens.instrument()`` and internal-error
re-raising off, as a user has it (inside pytest). What the app sees — result, exception type and
message, stream items, warnings — and what the app sends must be identical in both arms.
``FAULTS_CASES`` and ``FAULTS_SEED`` change the campaign's size and seed.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import otel_tokens
from tests.faults import driver
from tests.faults.cases import Case, generate
from tests.faults.conftest import Providers, providers
from tests.faults.rawserver import RawServer, Received

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

CASES = int(os.environ.get("FAULTS_CASES", "10000"))
SEED = int(os.environ.get("FAULTS_SEED", "20261203"))
PLAIN, INSTRUMENTED = "plain", "instrumented"


@dataclass
class Campaign:
    cases: list[Case]
    outcomes: dict[str, dict[str, driver.Outcome]]
    received: list[Received]
    telemetry: Providers


def _arm(server: RawServer, cases: list[Case], arm: str) -> dict[str, driver.Outcome]:
    out: dict[str, driver.Outcome] = {}
    # earlier tests' garbage (an unclosed event loop warns when collected) is collected now,
    # not by a collection that happens to fall inside one case's warning capture
    gc.collect()
    sync = driver.clients(server.base_url)
    try:
        for case in cases:
            if not case.is_async:
                out[case.id] = driver.run_case(sync, case, arm)
    finally:
        sync.close()

    async def run_async() -> None:
        clients = driver.async_clients(server.base_url)
        try:
            for case in cases:
                if case.is_async:
                    out[case.id] = await driver.run_case_async(clients, case, arm)
        finally:
            await clients.close()

    asyncio.run(run_async())
    return out


def _both_arms(
    cases: list[Case], telemetry: Providers
) -> tuple[dict[str, driver.Outcome], dict[str, driver.Outcome], list[Received]]:
    """Every case without otel-tokens, then instrumented; the outcomes and what the server received."""
    from otel_tokens.attribution import context

    with RawServer({c.id: c.response for c in cases}) as server:
        plain = _arm(server, cases, PLAIN)
        context.reset_for_tests()
        otel_tokens.instrument(
            tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
        )
        try:
            instrumented = _arm(server, cases, INSTRUMENTED)
        finally:
            otel_tokens.uninstrument()
            context.reset_for_tests()
        return plain, instrumented, list(server.received)


@pytest.fixture(scope="module")
def campaign(user_guard: None) -> Iterator[Campaign]:
    cases = generate(SEED, CASES)
    telemetry = providers()
    plain, instrumented, received = _both_arms(cases, telemetry)
    yield Campaign(cases, {PLAIN: plain, INSTRUMENTED: instrumented}, received, telemetry)


def test_the_campaign_covers_every_family(campaign: Campaign) -> None:
    cases = campaign.cases
    assert len(cases) >= min(CASES, 10_000)
    kinds = collections.Counter(k for c in cases for k in c.kind.split(","))
    modes = collections.Counter(c.mode for c in cases)
    if CASES >= 10_000:
        for family in (
            "valid", "truncated", "garbage", "empty", "non-utf8", "non-utf8-event", "bad-json-event",
            "no-done", "comment", "multiline-data", "split", "no-content-type", "status-429",
            "status-500", "cut-zero", "cut-json", "cut-after-data", "cut-boundary", "cut-before-last",
            "cut-in-frame", "cut-one-byte-short",
        ):  # fmt: skip
            assert kinds[family] >= 40, (family, kinds[family])
        assert all(count >= 300 for count in modes.values()), modes
        assert sum(c.is_async for c in cases) >= 1000
        consumed = collections.Counter(c.consume[0] for c in cases)
        assert consumed["break"] >= 500 and consumed["none"] >= 150, consumed
    # the responses really are hostile: most families end in an exception the app sees
    errors = collections.Counter((o.error or "ok").split(":")[0] for o in campaign.outcomes[PLAIN].values())
    assert errors["ok"] < 0.7 * len(cases), errors
    assert len(errors) >= 15, errors
    print(f"\nfault campaign: {len(cases)} cases, seed {SEED}; outcomes {dict(errors.most_common())}")


def test_the_app_sees_the_same_with_and_without_otel_tokens(campaign: Campaign) -> None:
    plain, instrumented = campaign.outcomes[PLAIN], campaign.outcomes[INSTRUMENTED]
    differences = [
        (case.id, case.mode, case.kind, plain[case.id], instrumented[case.id])
        for case in campaign.cases
        if plain[case.id] != instrumented[case.id]
    ]
    print(f"\ndifferential: {len(campaign.cases)} cases, {len(differences)} differences")
    assert differences == []


def test_the_app_sends_the_same_with_and_without_otel_tokens(campaign: Campaign) -> None:
    by_arm: dict[str, dict[str, list[Received]]] = {PLAIN: {}, INSTRUMENTED: {}}
    for request in campaign.received:
        by_arm[request.arm].setdefault(request.case, []).append(request)
    assert len(by_arm[PLAIN]) == len(campaign.cases)
    differences = []
    for case in campaign.cases:
        sent = [
            [(r.request_line, driver.request_headers(r.headers), r.body) for r in by_arm[arm][case.id]]
            for arm in (PLAIN, INSTRUMENTED)
        ]
        if sent[0] != sent[1]:
            differences.append((case.id, sent))
    assert differences == []


def _llm_spans(telemetry: Providers) -> list[Any]:
    return [
        s
        for s in telemetry.spans.get_finished_spans()
        if s.instrumentation_scope is not None and s.instrumentation_scope.name == "otel_tokens"
    ]


def test_every_call_is_recorded_exactly_once(campaign: Campaign) -> None:
    spans = _llm_spans(campaign.telemetry)
    assert len(spans) == len(campaign.cases)
    calls = 0.0
    data = campaign.telemetry.reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "otel_tokens.calls":
                    calls += sum(p.value for p in metric.data.data_points)
    assert calls == len(campaign.cases)


def test_no_key_or_content_in_the_fuzzed_calls_telemetry(campaign: Campaign) -> None:
    spans = b"".join(s.to_json().encode() for s in campaign.telemetry.spans.get_finished_spans())
    data = campaign.telemetry.reader.get_metrics_data()
    metrics = data.to_json().encode() if data is not None else b""
    assert b"gpt-4o-mini" in spans and b"otel_tokens" in metrics
    needles = (driver.API_KEY.encode(), b"SECRET-", driver.PROMPT.encode())
    findings = [
        (where, n) for where, blob in (("spans", spans), ("metrics", metrics)) for n in needles if n in blob
    ]
    print(f"\nsecrets scan of the fuzzed calls: {len(spans) + len(metrics)} bytes, {len(findings)} findings")
    assert findings == []


def _implausible(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not 0 <= value < 2**53
    return isinstance(value, float) and not math.isfinite(value)


def test_token_counts_on_spans_are_clamped(campaign: Campaign) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = _llm_spans(campaign.telemetry)
    bad = [
        (s.name, k, v)
        for s in spans
        for k, v in (s.attributes or {}).items()
        if "tokens" in k and _implausible(v)
    ]
    unencodable = 0
    for span in spans:
        try:
            encode_spans([span]).SerializeToString()
        except Exception:
            unencodable += 1
    assert (bad[:5], unencodable) == ([], 0)


class _Exploding:
    """A span processor that fails: a telemetry error the guard must keep from the app."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("telemetry exploded")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("telemetry exploded")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.mark.parametrize("raising", [False, True], ids=["as-a-user", "re-raising"])
def test_the_comparison_catches_a_telemetry_error_reaching_the_app(
    raising: bool, user_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The differential can fail: with re-raising on, a failing span processor shows up."""
    from tests.faults.conftest import RAISE_SWITCHES

    if raising:
        for name in RAISE_SWITCHES:
            monkeypatch.setenv(name, "true")
        monkeypatch.delenv("OTEL_TOKENS_SWALLOW_INTERNAL_ERRORS", raising=False)
    cases = generate(SEED + 1, 100)
    telemetry = providers()
    telemetry.tracer_provider.add_span_processor(_Exploding())  # type: ignore[arg-type]
    plain, instrumented, _ = _both_arms(cases, telemetry)
    differences = [c.id for c in cases if plain[c.id] != instrumented[c.id]]
    if raising:
        assert len(differences) > len(cases) // 2
        assert any("telemetry exploded" in (instrumented[c].error or "") for c in differences)
    else:
        assert differences == []
