"""Every dashboard panel query and every rule, executed against the live stack.

The workload (tests/stack/e2e_dashboards_workload.py) is what a team runs: short-lived
processes of three services, all at once (a few calls each, exported once at exit; the CI
job's are GitHub Actions steps attributed by OTEL_TOKENS_TASK only), one long-lived worker,
then a burst from a new short-lived process of the worker's service. They use the real
openai and anthropic SDKs against the fake LLM server, instrumented only by
OTEL_TOKENS_ENABLED=true and the standard OTLP variables pointing at the built collector,
which remote-writes to Prometheus. Then:

* every Prometheus query of every generated panel (template variables substituted) and
  every recording rule returns data; every alert expression executes;
* key panels show exactly what the workloads' own spans say (an extra in-process span
  processor writes them to a file): total spend, calls, retries, cost per task...;
* the spend-spike alert fires on the live Prometheus after a burst, not during the noisy
  baseline before it; exemplars on the spend series carry trace ids of real spans.

The rules are the generated ones with `for: 0s`, 1s group intervals and time constants
longer than a test scaled down (`TEST_THRESHOLDS`, `TIME_SCALING`), swapped into the running
Prometheus by a config reload and restored afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tokens import names as n
from otel_tokens.stack import dashboards, promnames, rules

from .conftest import REPO, Stack
from .e2e_dashboards_workload import STEPS

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(600)]

WORKLOAD = Path(__file__).with_name("e2e_dashboards_workload.py")
RUN = uuid.uuid4().hex[:6]
JOBS = {phase: f"e2e-{RUN}-{phase}" for phase in ("main", "ci", "spike", "budgets")}
ALL_JOBS = f"e2e-{RUN}-.*"
BASELINE_S = 60.0  # spike baseline: ~60 evaluations of the 1-day z-score before the burst
PIPELINE, PIPELINE_JOB = "nightly-evals", "eval-job"
CI_MARKERS = ("CI", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "JENKINS_URL", "TF_BUILD")
# A test cannot wait a day. The rules' time constants that exceed a test run are scaled down
# textually (each must still be found, so a rule change fails here rather than silently):
# the spike baseline skips the last 10s instead of 1h and needs 20 evaluations (1s each)
# instead of 18h; "spend today" sums 5m-rate windows at 5s instead of 5m steps.
TEST_THRESHOLDS = dataclasses.replace(rules.DEFAULTS, spike_for="0s", spike_min_history_hours=20 / 60)
TIME_SCALING = (
    ("offset 1h", "offset 10s"),
    ("[1d:5m]", "[1d:5s]"),
    ("300 * sum_over_time(", "5 * sum_over_time("),
)


# --- Prometheus client ------------------------------------------------------------------------
class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, params: dict[str, str]) -> Any:
        request = urllib.request.Request(self.url + path + "?" + urllib.parse.urlencode(params))
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/query", {"query": expr})["result"])

    def range(self, expr: str, start: float, end: float, step: str = "2s") -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        return list(self._get("/api/v1/query_range", params)["result"])

    def exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        return list(
            self._get("/api/v1/query_exemplars", {"query": expr, "start": str(start), "end": str(end)})
        )

    def reload(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(self.url + "/-/reload", method="POST"), timeout=30
        ).close()


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    points = [s["value"] for s in result if "value" in s] + [v for s in result for v in s.get("values", [])]
    return [float(v) for _, v in points if math.isfinite(float(v))]


def poll(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


# --- the workload ---------------------------------------------------------------------------------
def workload_env(stack: Stack, phase: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "OTEL_")) and k not in CI_MARKERS
    }
    env |= {
        "OTEL_TOKENS_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": JOBS[phase],
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    if phase == "ci":  # a GitHub Actions job step, attributed by the environment only
        env |= {n.ENV_TASK: "eval", n.ENV_TASK_SIZE: "M", n.ENV_TEAM: "e2e-ci"}
        env |= {"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": PIPELINE, "GITHUB_JOB": PIPELINE_JOB,
                "GITHUB_RUN_ID": "4242", "GITHUB_REPOSITORY": "example/otel-tokens"}  # fmt: skip
    return env


# The budgets phase runs under a file with the example's budget names (the committed Budgets
# dashboard draws those) and small limits, on a ledger of this run's own.
E2E_BUDGETS = """\
budgets:
  - {name: all, match: {}, limit_usd: 0.0001, period: day}
  - {name: team-search, match: {team: e2e-budgets}, limit_usd: 1, period: day}
  - {name: alice-monthly, match: {user: alice}, limit_usd: 100, period: month, action: block}
  - {name: small-tasks, match: {task_size: S}, limit_usd: 0.01, period: task, action: block}
"""


def budget_env(out: Path, step: str) -> dict[str, str]:
    path = out / "budgets.yaml"
    path.write_text(E2E_BUDGETS)
    ledger = "redis://127.0.0.1:1/0" if step.endswith("ledger-down") else f"sqlite:///{out / 'budgets.db'}"
    return {n.ENV_BUDGETS: str(path), n.ENV_LEDGER: ledger}


@dataclasses.dataclass
class Spans:
    records: list[dict[str, Any]]

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [r["attributes"] for r in self.records if n.COST_STATUS in r["attributes"]]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return [r["attributes"] for r in self.records if n.TASK_COST in r["attributes"]]

    def cost(self, where: Callable[[dict[str, Any]], bool] = lambda a: True) -> float:
        return math.fsum(a.get(n.GEN_AI_USAGE_COST, 0.0) for a in self.calls if where(a))


@dataclasses.dataclass
class Run:
    prom: Prom
    start: float
    end: float
    spans: dict[str, Spans]
    spike_start: float
    rules: dict[str, str]  # name -> expression, as loaded into Prometheus (time-scaled)


def scale_time(rule: rules.Recording | rules.Alert) -> rules.Recording | rules.Alert:
    expr = rule.expr
    for old, new in TIME_SCALING:
        expr = expr.replace(old, new)
    return dataclasses.replace(rule, expr=expr)


@pytest.fixture(scope="module")
def test_rules(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Prom, dict[str, str]]]:
    """The generated rules with `for: 0s` spike alerts and 1s groups, live in Prometheus."""
    prom = Prom(stack.prometheus_url)
    rules_dir = tmp_path_factory.mktemp("e2e-rules")
    groups = [
        dataclasses.replace(g, interval="1s", rules=tuple(map(scale_time, g.rules)))
        for g in rules.groups(TEST_THRESHOLDS, rules.default_budgets(), rules.default_policy())
    ]
    for old, new in TIME_SCALING:
        assert any(new in r.expr for g in groups for r in g.rules), f"no rule contains {old!r} any more"
    for name, content in rules.prometheus_files(groups).items():
        (rules_dir / name).write_text(yaml.safe_dump(content, sort_keys=False))
    config = stack.dir / "prometheus.yml"
    original = config.read_text()
    real = f"{REPO / 'deploy' / 'prometheus' / 'rules'}/*.yml"
    assert real in original, f"stack-local no longer loads {real}"
    config.write_text(original.replace(real, f"{rules_dir}/*.yml"))
    prom.reload()

    def reloaded() -> bool:
        loaded = prom._get("/api/v1/rules", {})["groups"]
        return bool(loaded) and all(
            g["file"].startswith(str(rules_dir)) and g["interval"] == 1 for g in loaded
        )

    poll("Prometheus to load the test rules", reloaded, timeout=30)
    try:
        yield (
            prom,
            {getattr(r, "record", None) or f"{r.name}:{r.uid}": r.expr for g in groups for r in g.rules},
        )
    finally:
        config.write_text(original)
        prom.reload()


@pytest.fixture(scope="module")
def run(
    stack: Stack, test_rules: tuple[Prom, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Run:
    """Short-lived processes (each exports once, at exit) running at the same time, beside
    one long-lived worker; then a burst from a new short-lived process of that worker's service."""
    out = tmp_path_factory.mktemp("e2e-spans")

    def start(phase: str, step: str) -> subprocess.Popen[str]:
        argv = [sys.executable, str(WORKLOAD), step, str(out / f"{phase}.jsonl"), str(BASELINE_S)]
        env = workload_env(stack, phase) | (budget_env(out, step) if phase == "budgets" else {})
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def finish(procs: dict[str, subprocess.Popen[str]]) -> None:
        for name, proc in procs.items():
            output, _ = proc.communicate(timeout=BASELINE_S + 120)
            assert proc.returncode == 0, f"workload {name} failed:\n{output}"

    start_time = time.time()
    procs = {f"{p}/{s}": start(p, s) for p, steps in STEPS.items() for s in steps}
    finish(procs)
    finish({"spike/burst": start("spike", "burst")})
    spans = {
        p: Spans([json.loads(line) for line in (out / f"{p}.jsonl").read_text().splitlines()]) for p in JOBS
    }
    huge = [r for r in spans["spike"].records if r["attributes"].get(n.GEN_AI_USAGE_COST, 0) > 1]
    assert len(huge) == 3
    prom, loaded = test_rules

    def all_spend_arrived() -> bool:  # the last export of each process has been written
        got = prom.instant(f'sum by (job) ({promnames.COST}{{job=~"{ALL_JOBS}"}})')
        by_job = {s["metric"]["job"]: float(s["value"][1]) for s in got}
        return all(by_job.get(JOBS[p], -1) == pytest.approx(spans[p].cost(), rel=1e-9) for p in JOBS)

    poll("the workloads' spend to reach Prometheus", all_spend_arrived, timeout=60)
    time.sleep(3)  # a few more rule evaluations over the complete data
    return Run(prom, start_time, time.time(), spans, min(r["start_ns"] for r in huge) / 1e9, loaded)


# --- every panel query and every rule has data -----------------------------------------------------------
def panel_targets() -> list[tuple[str, str, str, str, bool]]:
    out = []
    for uid in dashboards.BUILDERS:
        for panel in dashboards.iter_panels(dashboards.render(uid)):
            for t in panel.get("targets", []):
                if t["datasource"]["type"] == "prometheus":
                    out.append((uid, panel["title"], t["refId"], t["expr"], bool(t.get("instant"))))
    return out


TARGETS = panel_targets()
VALUES = {"service": ALL_JOBS, "__range": "1h", "__rate_interval": "10s", "__interval": "5s"}


def test_targets_cover_every_panel_query() -> None:
    assert [t[:4] for t in TARGETS] == dashboards.all_panel_queries()


def test_every_panel_query_returns_data(run: Run) -> None:
    empty = []
    for uid, title, ref, expr, instant in TARGETS:
        query = dashboards.substitute(expr, VALUES)
        result = run.prom.instant(query) if instant else run.prom.range(query, run.start, run.end)
        if not finite_values(result):
            empty.append(f"{uid} / {title} / {ref}: {query}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_recording_rule_returns_data_and_every_alert_executes(run: Run) -> None:
    """Every rule of `rules.all_queries()`, in the time-scaled form Prometheus evaluates here."""
    assert run.rules.keys() == {name for name, _ in rules.all_queries()}
    recordings = {r.record for r in rules.recording_rules(TEST_THRESHOLDS)}
    empty = []
    for name, expr in run.rules.items():
        result = run.prom.range(expr, run.start, run.end)  # raises on a query error
        if name in recordings and not finite_values(result):
            empty.append(f"{name}: {expr}")
    assert not empty, "recording rules without data:\n" + "\n".join(empty)


# --- exact values on key panels -----------------------------------------------------------------------------
def panel(title: str, ref: str = "A") -> str:
    (expr,) = [e for _, t, r, e in dashboards.all_panel_queries() if (t, r) == (title, ref)]
    return expr


def scalar(run: Run, title: str, service: str, ref: str = "A") -> float:
    result = run.prom.instant(dashboards.substitute(panel(title, ref), VALUES | {"service": service}))
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def by_labels(
    run: Run, title: str, service: str, labels: tuple[str, ...], ref: str = "A"
) -> dict[Any, float]:
    result = run.prom.instant(dashboards.substitute(panel(title, ref), VALUES | {"service": service}))
    return {tuple(s["metric"].get(lbl, "") for lbl in labels): float(s["value"][1]) for s in result}


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


SCALAR_PANELS: list[tuple[str, str, Callable[[dict[str, Spans]], float]]] = [
    ("Spend over the range", "main", lambda s: s["main"].cost()),
    ("Spend over the range", "main|ci", lambda s: s["main"].cost() + s["ci"].cost()),
    ("LLM calls over the range", "main", lambda s: len(s["main"].calls)),
    ("SDK retries", "main", lambda s: sum(a.get(n.RETRY_COUNT, 0) for a in s["main"].calls)),
    ("Cache savings over the range", "main",
     lambda s: math.fsum(a.get(n.CACHE_SAVINGS, 0.0) for a in s["main"].calls)),
    ("Unpriced calls over the range", "main",
     lambda s: sum(a[n.COST_STATUS] != "priced" for a in s["main"].calls)),
    ("Wasted spend (failed calls)", "main",
     lambda s: s["main"].cost(lambda a: a[n.OUTCOME] in ("error", "partial"))),
    ("Cost per successful task", "main",
     lambda s: _mean([t[n.TASK_COST] for t in s["main"].tasks if t[n.TASK_OUTCOME] == n.OUTCOME_SUCCESS])),
    ("Spend on failed tasks", "main",
     lambda s: math.fsum(t[n.TASK_COST] for t in s["main"].tasks if t[n.TASK_OUTCOME] != n.OUTCOME_SUCCESS)),
]  # fmt: skip


def _service(phases: str) -> str:
    return "|".join(JOBS[p] for p in phases.split("|"))


@pytest.mark.parametrize(
    ("title", "phases", "expected"), SCALAR_PANELS, ids=[f"{t}[{p}]" for t, p, _ in SCALAR_PANELS]
)
def test_key_panel_equals_the_spans(
    run: Run, title: str, phases: str, expected: Callable[[dict[str, Spans]], float]
) -> None:
    want = expected(run.spans)
    assert want > 0, "the workload must exercise this panel"
    assert scalar(run, title, _service(phases)) == pytest.approx(want, rel=1e-9)


VARIABLE_CASES: list[tuple[dict[str, str], Callable[[dict[str, Any]], bool]]] = [
    ({"team": "e2e-a"}, lambda a: a.get(n.TEAM) == "e2e-a"),
    ({"team": "e2e-a|e2e-ci"}, lambda a: a.get(n.TEAM) in ("e2e-a", "e2e-ci")),
    ({"model": "gpt-4o"}, lambda a: a[n.GEN_AI_REQUEST_MODEL] == "gpt-4o"),
    ({"pipeline": PIPELINE}, lambda a: a.get(n.CICD_PIPELINE_NAME) == PIPELINE),
    (
        {"team": "e2e-b", "model": "claude-.*"},
        lambda a: a.get(n.TEAM) == "e2e-b" and "claude" in a[n.GEN_AI_REQUEST_MODEL],
    ),
]


@pytest.mark.parametrize(("values", "where"), VARIABLE_CASES, ids=[str(v) for v, _ in VARIABLE_CASES])
def test_template_variables_filter_spend(
    run: Run, values: dict[str, str], where: Callable[[dict[str, Any]], bool]
) -> None:
    service = _service("main|ci")
    want = math.fsum(s.cost(where) for p, s in run.spans.items() if p != "spike")
    assert want > 0
    query = dashboards.substitute(panel("Spend over the range"), VALUES | {"service": service} | values)
    (result,) = run.prom.instant(query)
    assert float(result["value"][1]) == pytest.approx(want, rel=1e-9)


def test_template_variable_queries_list_the_workload_values(run: Run) -> None:
    """Each variable's label_values() query, as Grafana runs it (series API), offers our values."""
    want = {
        "service": set(JOBS.values()),
        "team": {"e2e-a", "e2e-b", "e2e-ci", "e2e-spike"},
        "model": {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-20250514", "claude-haiku-4-5-20251001"},
        "pipeline": {PIPELINE},
    }
    for var in dashboards.render(next(iter(dashboards.BUILDERS)))["templating"]["list"]:
        if var["name"] not in want:
            continue
        metric_sel, label = var["query"].removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        params = {
            "match[]": dashboards.substitute(metric_sel, {"service": ALL_JOBS}),
            "start": str(run.start),
        }
        values = set(run.prom._get(f"/api/v1/label/{label}/values", params))
        assert want[var["name"]] <= values, (var["name"], values)


def test_sanity_of_the_workload(run: Run) -> None:
    """The scalar panels above are only meaningful if the workload produced these cases."""
    main = run.spans["main"]
    assert sum(a.get(n.RETRY_COUNT, 0) for a in main.calls) == 1
    assert {t[n.TASK_OUTCOME] for t in main.tasks} == {"success", "failure"}
    assert sum(bool(a.get(n.LOOP_REPEAT)) for a in main.calls) == 2
    assert {a[n.COST_STATUS] for a in main.calls} == {"priced", "unpriced"}


def test_spend_by_model_equals_the_spans(run: Run) -> None:
    got = by_labels(
        run, "Spend over the range by model", JOBS["main"], (promnames.PROVIDER, promnames.REQUEST_MODEL)
    )
    want: dict[Any, float] = defaultdict(float)
    for a in run.spans["main"].calls:
        if n.GEN_AI_USAGE_COST in a:
            want[(a[n.GEN_AI_PROVIDER_NAME], a[n.GEN_AI_REQUEST_MODEL])] += a[n.GEN_AI_USAGE_COST]
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-9), key


@pytest.mark.parametrize(
    ("title", "attribute"),
    [
        ("Cost per task by name and size (over the range)", n.TASK_COST),
        ("LLM calls per task by name and size (over the range)", n.TASK_LLM_CALLS),
    ],
)
def test_per_task_mean_and_count_equal_the_task_spans(run: Run, title: str, attribute: str) -> None:
    key = (promnames.TASK_NAME, promnames.TASK_SIZE)
    service = _service("main|ci")
    means, counts = by_labels(run, title, service, key, "D"), by_labels(run, title, service, key, "E")
    per_task: dict[Any, list[float]] = defaultdict(list)
    for phase in ("main", "ci"):
        for t in run.spans[phase].tasks:
            per_task[(t[n.TASK_NAME], t[n.TASK_SIZE])].append(t[attribute])
    assert counts == {k: float(len(v)) for k, v in per_task.items()}
    assert means.keys() == per_task.keys()
    for k, values in per_task.items():
        assert means[k] == pytest.approx(_mean(values), rel=1e-9), k


def test_ci_cost_by_pipeline_and_trigger(run: Run) -> None:
    pipelines = by_labels(run, "CI-triggered cost by pipeline and job (over the range)", ALL_JOBS,
                          (promnames.PIPELINE, promnames.PIPELINE_TASK))  # fmt: skip
    assert pipelines == {(PIPELINE, PIPELINE_JOB): pytest.approx(run.spans["ci"].cost(), rel=1e-9)}
    triggers = by_labels(run, "Spend by trigger (over the range)", _service("main|ci"), (promnames.TRIGGER,))
    assert triggers == {
        ("local",): pytest.approx(run.spans["main"].cost(), rel=1e-9),
        ("ci",): pytest.approx(run.spans["ci"].cost(), rel=1e-9),
    }


# --- alerting and exemplars ---------------------------------------------------------------------------
def test_spend_spike_alert_fires_after_the_burst_and_not_before(run: Run) -> None:
    firing = (
        f'ALERTS{{alertname="OtelTokensSpendSpikeTeam", alertstate="firing", {promnames.TEAM}="e2e-spike"}}'
    )
    poll(
        "the spend-spike alert to fire", lambda: run.prom.instant(f"max_over_time({firing}[10m])"), timeout=60
    )
    result = run.prom.range(firing, run.start, time.time(), step="1s")
    first = min(float(t) for s in result for t, _ in s["values"])
    assert first >= run.spike_start, "the spike alert fired during the baseline"
    assert first <= run.spike_start + 30


def test_exemplars_link_spend_to_real_traces(run: Run) -> None:
    trace_ids = {r["trace_id"] for s in run.spans.values() for r in s.records}
    found = set()
    for series in (promnames.COST, promnames.TASK_COST + "_bucket"):
        for group in run.prom.exemplars(f'{series}{{job=~"{ALL_JOBS}"}}', run.start, time.time()):
            found |= {e["labels"].get("trace_id", "") for e in group["exemplars"]}
    assert found & trace_ids, f"no exemplar carries a workload trace id (saw {sorted(found)[:5]})"


def test_traces_to_metrics_links_return_data(run: Run) -> None:
    """The Tempo datasource's span -> metrics queries (provisioning), with the span's tags."""
    sources = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text())
    (tempo,) = [d for d in sources["datasources"] if d["uid"] == "tempo"]
    queries = tempo["jsonData"]["tracesToMetrics"]["queries"]
    assert queries
    for q in queries:
        expr = q["query"].replace("$$__tags", f'job=~"{ALL_JOBS}"')
        assert finite_values(run.prom.range(expr, run.start, run.end)), f"{q['name']}: {expr}"
