"""Series do not grow with processes: many short-lived replicas of one service, exporting at
the same time through the live collector, are one Prometheus series per label set, and
their totals add up exactly.

A "process" here is what the collector can tell apart: an OpenTelemetry SDK instance with
its own resource (a fresh ``service.instance.id``) that exports once, at shutdown, over
OTLP/HTTP. 1,000 OS processes would cost minutes of CPU on this machine; the real
short-lived processes are in test_e2e_dashboards.py. Half export delta (our default), half
cumulative (an SDK left at its default): the metrics path accepts both.
"""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from otel_tokens import names as n
from otel_tokens.stack import promnames

from .conftest import Stack
from .test_e2e_dashboards import poll

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

RUN = uuid.uuid4().hex[:6]
PROCESSES = 1000
ATTRS = {n.GEN_AI_PROVIDER_NAME: "openai", n.GEN_AI_REQUEST_MODEL: "gpt-4o", n.TEAM: "replicas"}


def spend(i: int) -> float:
    return 0.25 * (i % 4 + 1)  # exact in binary: the sum of 1,000 of them is exact too


def one_process(stack: Stack, service: str, i: int) -> None:
    kind = AggregationTemporality.DELTA if i % 2 == 0 else AggregationTemporality.CUMULATIVE
    exporter = OTLPMetricExporter(
        endpoint=f"{stack.otlp_endpoint}/v1/metrics",
        preferred_temporality={Counter: kind, Histogram: kind},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"service.name": service})  # with its own service.instance.id
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter(n.SCOPE)
    meter.create_counter(n.M_COST, unit=n.UNIT_USD).add(spend(i), ATTRS)
    tokens = meter.create_histogram(n.M_TOKEN_USAGE, unit=n.UNIT_TOKEN)
    tokens.record(100 + i % 7, {**ATTRS, n.GEN_AI_TOKEN_TYPE: "input"})
    provider.shutdown()  # the one export, at exit


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=30) as response:
            return list(json.load(response)["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None


def collector_metric(stack: Stack, name: str) -> dict[str, float]:
    env = dict(line.split("=", 1) for line in (stack.dir / "env").read_text().splitlines())
    with urllib.request.urlopen(env["COLLECTOR_METRICS_URL"], timeout=10) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name)
    }


def shapes(prom: Prom, job: str) -> set[str]:
    """The job's series, each as its labels without job and instance."""
    return {
        json.dumps({k: v for k, v in r["metric"].items() if k not in ("job", "instance")}, sort_keys=True)
        for r in prom.query(f'{{job="{job}"}}')
    }


def test_a_thousand_short_processes_are_the_series_of_one(stack: Stack) -> None:
    many, one = f"replicas-{RUN}-many", f"replicas-{RUN}-one"
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: one_process(stack, many, i), range(PROCESSES)))
    one_process(stack, one, 0)
    prom = Prom(stack.prometheus_url)
    want = math.fsum(spend(i) for i in range(PROCESSES))

    poll(
        "the replicas' spend to add up in Prometheus",
        lambda: prom.value(f'{promnames.COST}{{job="{many}"}}') == want,
        timeout=60,
    )
    series = {job: shapes(prom, job) for job in (many, one)}
    assert series[many] == series[one], series[many] ^ series[one]
    assert prom.value(f'count({promnames.COST}{{job="{many}"}})') == 1
    assert prom.value(f'{promnames.TOKEN_USAGE}_count{{job="{many}"}}') == PROCESSES
    assert prom.value(f'{promnames.TOKEN_USAGE}_sum{{job="{many}"}}') == sum(
        100 + i % 7 for i in range(PROCESSES)
    )
    # rate() sees the replicas' spend, and the one process's too (a zero starts each series)
    for job in (many, one):
        assert (prom.value(f'increase({promnames.COST}{{job="{job}"}}[5m])') or 0) > 0, job
    dropped = collector_metric(stack, "otelcol_deltatocumulative_datapoints")
    assert not [k for k, v in dropped.items() if "error" in k and v > 0], dropped
