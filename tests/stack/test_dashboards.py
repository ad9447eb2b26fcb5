"""The generated Grafana dashboards, their provisioning and docker-compose.yml.

Live execution of every panel query is in tests/stack/test_e2e_dashboards.py; here the
queries are checked statically: they parse (promtool), use only names from
otel_tokens.stack.promnames, and filter on the dashboard variables consistently.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tokens import names as n
from otel_tokens.stack import dashboards, promnames
from otel_tokens.stack.dashboards_common import FILTERS, VARIABLES, recorded_filters, substitute

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI") == "true"
MODELS = {uid: dashboards.render(uid) for uid in dashboards.BUILDERS}
PROM_QUERIES = dashboards.all_panel_queries()
PANELS_WITHOUT_QUERIES = {"row", "alertlist"}  # alertlist reads Grafana's own alert rules

PROMQL_FUNCTIONS = {
    "sum", "rate", "max_over_time", "histogram_quantile", "sort_desc", "time", "avg_over_time",
    "stddev_over_time", "vector", "increase", "max", "min", "count", "topk", "label_replace",
}  # fmt: skip
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "and",
    "or",
    "unless",
}
BUILTIN_SERIES = {"ALERTS"}
BUILTIN_LABELS = {"alertname", "alertstate"}


def _promnames_strings() -> set[str]:
    out = {v for v in vars(promnames).values() if isinstance(v, str)}
    for level in (*promnames.SPEND_LEVELS, promnames.LEVEL_TASK_SIZE):
        out |= {promnames.spend_per_second(level), promnames.spend_per_hour(level), *level[1]}
    for hist in (
        promnames.TASK_COST,
        promnames.TASK_LLM_CALLS,
        promnames.OPERATION_DURATION,
        promnames.TOKEN_USAGE,
    ):
        out |= {hist + s for s in ("_bucket", "_sum", "_count")}
    return out


ALLOWED_NAMES = _promnames_strings()
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # string
    r"|\d+(?:\.\d+)?(?:ms|[smhdwy])?"  # number or duration
    r"|[A-Za-z_:][A-Za-z0-9_:]*"  # identifier
    r"|=~|!=|!~|==|>=|<=|[-+*/%^(){}\[\],=<>]"  # operators
    r"|\s+"
)


def tokens(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m is not None, f"unexpected character at {pos}: {expr[pos : pos + 20]!r}"
        if not m.group().isspace():
            out.append(m.group())
        pos = m.end()
    return out


LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
MATCH_OPS = {"=~", "!=", "!~", "="}


def classify(expr: str) -> tuple[set[str], set[str], set[str], list[tuple[str, set[str]]]]:
    """(functions, metric names, label names, [(metric, labels matched in its selector)])."""
    toks = tokens(substitute(expr))
    funcs: set[str] = set()
    metrics: set[str] = set()
    labels: set[str] = set()
    selectors: list[tuple[str, set[str]]] = []
    i = 0
    while i < len(toks):
        tok = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok in LABEL_LIST_KEYWORDS and nxt == "(":  # by (a, b)
            j = i + 2
            while toks[j] != ")":
                if toks[j] != ",":
                    labels.add(toks[j])
                j += 1
            i = j + 1
            continue
        if not re.match(r"[A-Za-z_:]", tok) or tok in PROMQL_KEYWORDS:
            i += 1
            continue
        if nxt == "(" or nxt in {"by", "without"}:
            funcs.add(tok)
            i += 1
            continue
        metrics.add(tok)
        matched: set[str] = set()
        if nxt == "{":
            j = i + 2
            while toks[j] != "}":
                if toks[j + 1] in MATCH_OPS:
                    matched.add(toks[j])
                j += 1
            i = j
        labels |= matched
        selectors.append((tok, matched))
        i += 1
    return funcs, metrics, labels, selectors


def balanced(expr: str) -> bool:
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for tok in tokens(substitute(expr)):
        if tok in "([{":
            stack.append(tok)
        elif tok in pairs:
            if not stack or stack.pop() != pairs[tok]:
                return False
    return not stack


# --- generation ----------------------------------------------------------------------------
def test_committed_dashboards_match_the_generator(tmp_path: Path) -> None:
    written = dashboards.write_all(tmp_path)
    committed = sorted(p.name for p in (ROOT / "dashboards").glob("*.json"))
    assert committed == sorted(p.name for p in written), "run scripts/generate-stack and commit dashboards/"
    for path in written:
        assert (ROOT / "dashboards" / path.name).read_text() == path.read_text(), (
            f"dashboards/{path.name} differs from the generator: run scripts/generate-stack and commit"
        )


def test_generation_is_deterministic() -> None:
    first = {uid: dashboards.dumps(dashboards.render(uid)) for uid in dashboards.BUILDERS}
    second = {uid: dashboards.dumps(dashboards.render(uid)) for uid in dashboards.BUILDERS}
    assert first == second
    assert all(text.endswith("}\n") for text in first.values())


@pytest.mark.parametrize(
    ("uid", "title"),
    [
        ("otel-tokens-spend", "otel-tokens / Spend overview"),
        ("otel-tokens-tasks", "otel-tokens / Tasks and agents"),
        ("otel-tokens-anomalies", "otel-tokens / Anomalies and alerts"),
    ],
)
def test_dashboards_have_stable_uids_and_titles(uid: str, title: str) -> None:
    assert MODELS[uid]["uid"] == uid
    assert MODELS[uid]["title"] == title


# --- panels and datasources -------------------------------------------------------------------
def _panels() -> list[tuple[str, dict[str, Any]]]:
    return [(uid, p) for uid, m in MODELS.items() for p in dashboards.iter_panels(m)]


@pytest.mark.parametrize(("uid", "panel"), _panels(), ids=lambda x: x if isinstance(x, str) else x["title"])
def test_every_panel_has_a_fixed_datasource_uid(uid: str, panel: dict[str, Any]) -> None:
    if panel["type"] in PANELS_WITHOUT_QUERIES:
        assert "targets" not in panel
        return
    assert panel["datasource"]["uid"] in dashboards.DATASOURCE_UIDS
    assert panel["targets"], "a panel without queries"
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"]
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert ref_ids == [chr(ord("A") + i) for i in range(len(ref_ids))]


@pytest.mark.parametrize("uid", list(MODELS))
def test_panel_ids_and_titles_are_unique(uid: str) -> None:
    panels = list(dashboards.iter_panels(MODELS[uid]))
    assert [p["id"] for p in panels] == list(range(1, len(panels) + 1))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles))


@pytest.mark.parametrize("uid", list(MODELS))
def test_template_variables(uid: str) -> None:
    by_name = {v["name"]: v for v in MODELS[uid]["templating"]["list"]}
    for var, label in VARIABLES.items():
        v = by_name[var]
        assert (v["type"], v["multi"], v["includeAll"], v["allValue"]) == ("query", True, True, ".*")
        assert v["datasource"]["uid"] == "prometheus"
        assert v["query"].startswith(f"label_values({promnames.CALLS}") and v["query"].endswith(f", {label})")


def test_user_row_is_collapsed_and_explains_pseudonymisation() -> None:
    rows = [p for p in MODELS["otel-tokens-spend"]["panels"] if p["type"] == "row" and "user" in p["title"]]
    assert len(rows) == 1 and rows[0]["collapsed"] is True
    assert rows[0] is MODELS["otel-tokens-spend"]["panels"][-1], "a collapsed row must be last"
    for panel in rows[0]["panels"]:
        assert "OTEL_TOKENS_HASH_USER_IDS" in panel["description"]


@pytest.mark.parametrize("uid", list(MODELS))
def test_each_dashboard_links_spikes_to_traces_with_exemplars(uid: str) -> None:
    exemplars = [
        t for p in dashboards.iter_panels(MODELS[uid]) for t in p.get("targets", []) if t.get("exemplar")
    ]
    assert exemplars


def test_task_cost_is_shown_as_a_distribution() -> None:
    panels = {p["title"]: p for p in dashboards.iter_panels(MODELS["otel-tokens-tasks"])}
    heat = panels["Cost per task: distribution over time"]
    assert heat["type"] == "heatmap" and heat["targets"][0]["format"] == "heatmap"
    table = panels["Cost per task by name and size (over the range)"]
    exprs = [t["expr"] for t in table["targets"]]
    assert [e.split(",")[0] for e in exprs[:3]] == [f"histogram_quantile({q}" for q in (0.5, 0.9, 0.99)]
    assert all(f"{promnames.TASK_COST}_bucket" in e for e in exprs[:3])


# --- PromQL ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uid", "title", "ref", "expr"), PROM_QUERIES, ids=[f"{q[1]}:{q[2]}" for q in PROM_QUERIES]
)
def test_query_uses_only_promnames_and_filters_consistently(
    uid: str, title: str, ref: str, expr: str
) -> None:
    assert balanced(expr), expr
    funcs, metrics, labels, selectors = classify(expr)
    assert funcs <= PROMQL_FUNCTIONS, funcs - PROMQL_FUNCTIONS
    assert metrics <= ALLOWED_NAMES | BUILTIN_SERIES, metrics - ALLOWED_NAMES
    assert labels <= ALLOWED_NAMES | BUILTIN_LABELS, labels - ALLOWED_NAMES
    variable_labels = set(VARIABLES.values())
    for metric, matched in selectors:
        if metric in BUILTIN_SERIES:
            continue
        expected = set(FILTERS[metric] if metric in FILTERS else recorded_filters(metric))
        assert matched & variable_labels == expected, f"{metric}: filters {matched} but carries {expected}"
        for var, label in VARIABLES.items():
            if label in expected:
                assert f'{label}=~"${var}"' in expr


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if CI:
            pytest.fail("promtool missing: apt-get install prometheus")
        pytest.skip("promtool not installed")
    rules = [{"record": f"panel:q{i}", "expr": substitute(q[3])} for i, q in enumerate(PROM_QUERIES)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


@pytest.mark.parametrize(
    ("expr", "values", "expected"),
    [
        ('x{job=~"$service"}', None, 'x{job=~".*"}'),
        ('x{a=~"${team}"}[$__rate_interval]', {"team": "search"}, 'x{a=~"search"}[1m]'),
        ('x{a=~"${model:regex}"} offset $__range', {"model": "gpt-4o|o3"}, 'x{a=~"gpt-4o|o3"} offset 1h'),
        ("sum(x[$__interval])", {"__interval": "15s"}, "sum(x[15s])"),
    ],
)
def test_substitute(expr: str, values: dict[str, str] | None, expected: str) -> None:
    assert substitute(expr, values) == expected


def test_substitute_rejects_unknown_variables() -> None:
    with pytest.raises(KeyError):
        substitute("x{a=~'$nope'}")


# --- TraceQL -----------------------------------------------------------------------------------------
SPAN_NAMES = {v for k, v in vars(n).items() if k.isupper() and isinstance(v, str)}


@pytest.mark.parametrize(("uid", "title", "ref", "query"), dashboards.all_traceql_queries())
def test_traceql_uses_only_names_from_the_contract(uid: str, title: str, ref: str, query: str) -> None:
    stripped = re.sub(r'"[^"]*"', '""', query)
    assert all(stripped.count(a) == stripped.count(b) for a, b in ("()", "{}", "[]")), query
    attrs = set(re.findall(r"\bspan\.([a-z_.]+)", query))
    assert attrs and attrs <= SPAN_NAMES, attrs - SPAN_NAMES
    assert (
        f'span.{n.GEN_AI_OPERATION_NAME} = "{n.OP_INVOKE_WORKFLOW}"' in query or n.GEN_AI_USAGE_COST in query
    )


# --- provisioning ------------------------------------------------------------------------------------
def _load(rel: str) -> Any:
    return yaml.safe_load((ROOT / rel).read_text())


def test_datasources_link_exemplars_to_tempo_and_traces_to_metrics() -> None:
    sources = {
        d["uid"]: d for d in _load("deploy/grafana/provisioning/datasources/datasources.yaml")["datasources"]
    }
    assert set(sources) == dashboards.DATASOURCE_UIDS
    prom, tempo = sources["prometheus"], sources["tempo"]
    assert (prom["type"], tempo["type"]) == ("prometheus", "tempo")
    assert prom["jsonData"]["exemplarTraceIdDestinations"] == [{"name": "trace_id", "datasourceUid": "tempo"}]
    t2m = tempo["jsonData"]["tracesToMetrics"]
    assert t2m["datasourceUid"] == "prometheus"
    assert tempo["jsonData"]["serviceMap"]["datasourceUid"] == "prometheus"
    assert {t["value"] for t in t2m["tags"]} <= ALLOWED_NAMES
    for q in t2m["queries"]:
        # $$ escapes Grafana's env expansion in provisioning files; $__tags expands to label matchers
        expr = q["query"].replace("{$$__tags}", "")
        assert "$" not in expr and balanced(expr)
        assert classify(expr)[1] <= ALLOWED_NAMES


def test_dashboard_provider_points_at_the_mounted_directory() -> None:
    provider = _load("deploy/grafana/provisioning/dashboards/dashboards.yaml")["providers"][0]
    compose = _load("docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards:{provider['options']['path']}:ro" in mounts


def test_compose_pins_images_and_runs_the_collector_config_unchanged() -> None:
    compose = _load("docker-compose.yml")
    builder = _load("collector/builder.yaml")
    services = compose["services"]
    assert (
        services["collector"]["image"] == f"otel/opentelemetry-collector-contrib:{builder['dist']['version']}"
    )
    assert "./collector/config.yaml:/etc/otelcol-contrib/config.yaml:ro" in services["collector"]["volumes"]
    assert services["grafana"]["image"].startswith("grafana/grafana:11.6.")
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image"
    prom_cmd = " ".join(services["prometheus"]["command"])
    assert (
        "--enable-feature=exemplar-storage" in prom_cmd and "--web.enable-remote-write-receiver" in prom_cmd
    )
    for name in ("collector-sampler-1", "collector-sampler-2"):  # the scale-out profile's samplers
        assert services[name]["volumes"][0] == "./collector/config.yaml:/etc/otelcol-contrib/config.yaml:ro"
        assert services[name]["image"] == services["collector"]["image"]
    backends = yaml.safe_load(services["collector-lb"]["environment"]["OTEL_TOKENS_LB_BACKENDS"])
    assert backends == ["collector-sampler-1:4317", "collector-sampler-2:4317"]
    demo_env = services["demo"]["environment"]
    assert demo_env["OTEL_TOKENS_ENABLED"] == "true"
    assert demo_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"


def test_docker_compose_config_is_valid() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        if CI:
            pytest.fail("docker-compose missing: apt-get install docker-compose")
        pytest.skip("docker-compose not installed")
    out = subprocess.run([exe, "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_dashboard_json_is_what_grafana_loads() -> None:
    for uid in MODELS:
        loaded = json.loads((ROOT / "dashboards" / f"{uid}.json").read_text())
        assert loaded["uid"] == uid and loaded["schemaVersion"] >= 39
