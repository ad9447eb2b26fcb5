"""task()/agent() scopes: span shape, exact rollups, nesting, outcomes, decorators, metrics."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokens import names as n
from otel_tokens.attribution import context
from tests.attribution_helpers import Providers, add, providers

__all__ = ["providers"]


def zero_rollup(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        n.TASK_COST: 0.0,
        n.TASK_LLM_CALLS: 0,
        n.TASK_INPUT_TOKENS: 0,
        n.TASK_OUTPUT_TOKENS: 0,
        n.TASK_CACHE_READ_TOKENS: 0,
        n.TASK_CACHE_WRITE_TOKENS: 0,
        n.TASK_REASONING_TOKENS: 0,
        n.TASK_RETRIES: 0,
        n.TASK_UNPRICED_CALLS: 0,
        n.TASK_LOOP_REPEATS: 0,
        n.TASK_OUTCOME: n.OUTCOME_SUCCESS,
    }
    base.update(over)
    return base


def test_task_span_and_llm_attributes(providers: Providers) -> None:
    with providers.task("triage", id="T-1", size="S", user="alice", team="support") as t:
        scope = context.current_scope()
        llm_attrs = dict(scope.span_attributes)
        metric_attrs = dict(scope.metric_attributes)
        bag = dict(baggage.get_all())
        assert t.id == "T-1"
    identity = {
        n.TRIGGER: n.TRIGGER_LOCAL,
        n.TASK_NAME: "triage",
        n.TASK_ID: "T-1",
        n.TASK_SIZE: "S",
        n.USER_ID: "alice",
        n.TEAM: "support",
    }
    assert llm_attrs == identity
    assert metric_attrs == {k: v for k, v in identity.items() if k != n.TASK_ID}
    assert bag == {}  # attribution never goes into W3C baggage (it would reach outbound HTTP)
    span = providers.span("invoke_workflow triage")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_WORKFLOW,
        n.GEN_AI_WORKFLOW_NAME: "triage",
        **identity,
        **zero_rollup(),
    }
    assert context.current_scope() is context.root_scope()  # left the scope


def test_fresh_task_id_when_none_given(providers: Providers) -> None:
    ids = []
    for _ in range(3):
        with providers.task("t") as t:
            ids.append(t.id)
    assert len(set(ids)) == 3 and all(isinstance(i, str) and len(i) == 32 for i in ids)


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        # float costs whose float sum is inexact: 0.1 + 0.2 + 0.3 == 0.6000000000000001
        ([0.1, 0.2, 0.3], Decimal("0.6")),
        ([Decimal("0.0000375"), Decimal("0.0000375"), Decimal("1.25")], Decimal("1.250075")),
        ([Decimal("0.002"), None, 0.001, None], Decimal("0.003")),
        ([None], Decimal("0")),
    ],
)
def test_rollup_is_exact(
    providers: Providers, costs: list[Decimal | float | None], expected: Decimal
) -> None:
    with providers.task("t") as t:
        for i, cost in enumerate(costs, start=1):
            add(cost, inp=100 * i, out=10 * i, cr=5 * i, cw=i, rs=2 * i, retries=i % 2)
    k = len(costs)
    tri = k * (k + 1) // 2
    unpriced = sum(c is None for c in costs)
    assert t.totals().cost == expected
    assert (
        dict(providers.span("invoke_workflow t").attributes or {}).items()
        >= zero_rollup(
            **{
                n.TASK_COST: float(expected),
                n.TASK_LLM_CALLS: k,
                n.TASK_INPUT_TOKENS: 100 * tri,
                n.TASK_OUTPUT_TOKENS: 10 * tri,
                n.TASK_CACHE_READ_TOKENS: 5 * tri,
                n.TASK_CACHE_WRITE_TOKENS: tri,
                n.TASK_REASONING_TOKENS: 2 * tri,
                n.TASK_RETRIES: (k + 1) // 2,
                n.TASK_UNPRICED_CALLS: unpriced,
            }
        ).items()
    )


def test_nesting_rolls_up_and_counts_iterations_per_scope(providers: Providers) -> None:
    iterations: list[tuple[str, int]] = []

    def llm(cost: str) -> None:
        scope = context.current_scope()
        iterations.append((scope.name or "", scope.next_iteration()))
        add(Decimal(cost), inp=1)

    with providers.task("outer", size="L", user="bob", team="core") as outer:
        llm("0.1")
        with providers.agent("planner"):
            llm("0.01")
            llm("0.02")
            agent_attrs = dict(context.current_scope().span_attributes)
            with providers.agent("critic"):
                llm("0.001")
        with providers.task("inner") as inner:
            inner_attrs = dict(context.current_scope().span_attributes)
            llm("0.0001")
        llm("0.2")

    assert iterations == [
        ("outer", 1),
        ("planner", 1),
        ("planner", 2),
        ("critic", 1),
        ("inner", 1),
        ("outer", 2),
    ]
    assert agent_attrs[n.GEN_AI_AGENT_NAME] == "planner"
    assert agent_attrs[n.TASK_ID] == outer.id
    # a nested task has its own name, id and size; user and team are inherited
    assert inner_attrs == {
        n.TRIGGER: n.TRIGGER_LOCAL,
        n.TASK_NAME: "inner",
        n.TASK_ID: inner.id,
        n.USER_ID: "bob",
        n.TEAM: "core",
    }
    assert inner.id != outer.id
    rollups = {
        s.name: ((s.attributes or {})[n.TASK_COST], (s.attributes or {})[n.TASK_LLM_CALLS])
        for s in providers.spans()
    }
    assert rollups == {
        "invoke_agent critic": (0.001, 1),
        "invoke_agent planner": (0.031, 3),
        "invoke_workflow inner": (0.0001, 1),
        "invoke_workflow outer": (float(Decimal("0.3311")), 6),
    }
    parent = {s.name: s.parent.span_id if s.parent else None for s in providers.spans()}
    ids = {s.name: s.context.span_id for s in providers.spans()}
    assert parent["invoke_agent critic"] == ids["invoke_agent planner"]
    assert parent["invoke_agent planner"] == ids["invoke_workflow outer"]
    assert parent["invoke_workflow inner"] == ids["invoke_workflow outer"]


@pytest.mark.parametrize(
    ("explicit", "raises", "outcome"),
    [
        (None, False, n.OUTCOME_SUCCESS),
        (None, True, n.OUTCOME_FAILURE),
        ("escalated", False, "escalated"),
        ("gave_up", True, "gave_up"),
    ],
)
def test_outcome(providers: Providers, explicit: str | None, raises: bool, outcome: str) -> None:
    with pytest.raises(KeyError) if raises else _nothing():
        with providers.task("t") as t:
            add(Decimal("0.5"))
            if explicit:
                t.set_outcome(explicit)
            if raises:
                raise KeyError("boom")
    span = providers.span("invoke_workflow t")
    attrs = dict(span.attributes or {})
    assert attrs[n.TASK_OUTCOME] == outcome
    assert attrs.get(n.ERROR_TYPE) == ("KeyError" if raises else None)
    assert span.status.status_code is (StatusCode.ERROR if raises else StatusCode.UNSET)
    ((point_attrs, point),) = providers.points(n.M_TASKS)
    assert (point_attrs[n.TASK_OUTCOME], point.value) == (outcome, 1)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_decorators_sync_and_async_open_a_fresh_scope_per_call(providers: Providers) -> None:
    seen: list[tuple[str | None, str]] = []

    @providers.task("sync-job", size="M")
    def job(x: int) -> int:
        scope = context.current_scope()
        seen.append((str(scope.span_attributes[n.TASK_ID]), str(scope.span_attributes[n.TASK_NAME])))
        return x * 2

    @providers.agent("async-agent")
    async def step(x: int) -> int:
        seen.append((None, str(context.current_scope().span_attributes[n.GEN_AI_AGENT_NAME])))
        return x + 1

    assert job.__name__ == "job" and step.__name__ == "step"
    assert job(2) == 4 and job(3) == 6
    assert asyncio.run(step(1)) == 2
    assert seen[0][1] == seen[1][1] == "sync-job" and seen[0][0] != seen[1][0]
    assert seen[2] == (None, "async-agent")
    assert sorted(s.name for s in providers.spans()) == [
        "invoke_agent async-agent",
        "invoke_workflow sync-job",
        "invoke_workflow sync-job",
    ]


def test_a_scope_object_is_single_use(providers: Providers) -> None:
    t = providers.task("t")
    with t:
        pass
    with pytest.raises(RuntimeError, match="already in use"):
        with t:
            pass


async def test_asyncio_gather_keeps_tasks_apart(providers: Providers) -> None:
    async def work(name: str, n_calls: int) -> tuple[str, list[int]]:
        async with providers.task(name) as t:
            its = []
            for _ in range(n_calls):
                await asyncio.sleep(0)
                its.append(context.current_scope().next_iteration())
                add(Decimal("0.01"))
            assert context.current_scope().name == name
            return str(t.id), its

    results = await asyncio.gather(work("a", 3), work("b", 2), work("c", 4))
    assert [its for _, its in results] == [[1, 2, 3], [1, 2], [1, 2, 3, 4]]
    calls = {s.name: (s.attributes or {})[n.TASK_LLM_CALLS] for s in providers.spans()}
    assert calls == {"invoke_workflow a": 3, "invoke_workflow b": 2, "invoke_workflow c": 4}
    trace_ids = {s.context.trace_id for s in providers.spans()}
    assert len(trace_ids) == 3  # independent tasks are separate traces


def test_task_joins_the_current_trace(providers: Providers) -> None:
    tracer = providers.tp.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        with providers.task("t"):
            pass
    span = providers.span("invoke_workflow t")
    assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_repeats_are_counted_per_scope_with_bounded_memory(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "REPEAT_MEMORY", 3)
    with providers.task("loop") as t:
        scope = context.current_scope()
        answers = [scope.is_repeat(fp) for fp in (1, 2, 1, 3, 4, 1, 4)]
        with providers.agent("a"):
            inner = context.current_scope().is_repeat(4)  # another scope: not a repeat
    # memory of 3: after 1,2,3,4 the oldest (1) is forgotten, so the last 1 is "new"
    assert answers == [False, False, True, False, False, False, True]
    assert inner is False
    assert t.totals().loop_repeats == 2
    assert (providers.span("invoke_workflow loop").attributes or {})[n.TASK_LOOP_REPEATS] == 2


def test_task_metrics(providers: Providers) -> None:
    for cost, size in ((Decimal("0.004"), "S"), (Decimal("0.02"), "S"), (Decimal("3"), "L")):
        with providers.task("review", size=size, team="web"):
            add(cost)
            add(None)
    points = {
        (a[n.TASK_SIZE], name): p
        for name in (n.M_TASK_COST, n.M_TASK_LLM_CALLS, n.M_TASKS)
        for a, p in providers.points(name)
    }
    attrs = {
        a_key
        for name in (n.M_TASK_COST, n.M_TASKS)
        for a, _ in providers.points(name)
        for a_key in [tuple(sorted(a.items()))]
    }
    assert attrs == {
        tuple(
            sorted(
                {
                    n.TASK_NAME: "review",
                    n.TASK_SIZE: s,
                    n.TEAM: "web",
                    n.TRIGGER: n.TRIGGER_LOCAL,
                    n.TASK_OUTCOME: n.OUTCOME_SUCCESS,
                }.items()
            )
        )
        for s in ("S", "L")
    }
    assert (points[("S", n.M_TASK_COST)].count, points[("S", n.M_TASK_COST)].sum) == (2, 0.024)
    assert (points[("L", n.M_TASK_COST)].count, points[("L", n.M_TASK_COST)].sum) == (1, 3.0)
    assert points[("S", n.M_TASK_LLM_CALLS)].sum == 4
    assert list(points[("S", n.M_TASK_COST)].explicit_bounds) == list(n.TASK_COST_BUCKETS)
    assert points[("S", n.M_TASKS)].value == 2


def test_ten_thousand_task_ids_add_no_metric_series(providers: Providers) -> None:
    names = ("build", "review", "triage")
    for i in range(10_000):
        with providers.task(names[i % 3], id=f"task-{i}"):
            pass
    for metric in (n.M_TASKS, n.M_TASK_COST, n.M_TASK_LLM_CALLS):
        series = providers.points(metric)
        assert sorted(a[n.TASK_NAME] for a, _ in series) == sorted(names)
        assert all(n.TASK_ID not in a for a, _ in series)
    assert sum(p.value for _, p in providers.points(n.M_TASKS)) == 10_000


def test_bounded_attribute_values_overflow(providers: Providers, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(n.ENV_MAX_ATTR_VALUES, "4")
    context.reset_for_tests({})
    for i in range(10):
        with providers.task(f"name-{i}"):
            pass
    names = sorted(a[n.TASK_NAME] for a, _ in providers.points(n.M_TASKS))
    assert names == ["_other", "name-0", "name-1", "name-2", "name-3"]
    ((_, other),) = [(a, p) for a, p in providers.points(n.M_TASKS) if a[n.TASK_NAME] == n.OVERFLOW_VALUE]
    assert other.value == 6
    assert context.bounded({n.TASK_NAME: "name-2", n.TEAM: "x"}) == {n.TASK_NAME: "name-2", n.TEAM: "x"}


@pytest.mark.parametrize("raw", ["0", "-3", "many"])
def test_bad_attribute_cap_falls_back_to_default(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(n.ENV_MAX_ATTR_VALUES, raw)
    context.reset_for_tests({})
    assert context.max_attr_values() == context.DEFAULT_MAX_ATTR_VALUES
    context.reset_for_tests()
