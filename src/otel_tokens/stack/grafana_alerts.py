"""The alert rules of `otel_tokens.stack.rules`, rendered as Grafana file-provisioned alerting.

Each `Alert` is built with grafana-foundation-sdk's alerting builders (query A: the very
PromQL of the Prometheus rule against the datasource uid ``prometheus``; B: reduce to the
last value; C: threshold B > 0, the condition). The SDK serialises the HTTP-API shape
(``folderUID``, ``ruleGroup``, ``orgID`` on each rule); `provisioning_rule` converts it to
the file-provisioning shape (those move to the group). The contact point is a placeholder
e-mail address (valid without configuration, so Grafana always starts; nothing is sent
until SMTP is set up): replace it, e.g. with a webhook whose URL is ``$SOME_ENV_VAR``
(Grafana expands environment variables in provisioning files, except in annotations). The
notification policy routes every alert to it.

Grafana-managed rules query the recorded series, so Prometheus must load
``deploy/prometheus/rules`` too. Use either Prometheus (with an Alertmanager) or
Grafana to notify, not both, or every alert arrives twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting as alerting_models

from otel_tokens.stack import _yaml
from otel_tokens.stack.rules import GENERATED, Alert, Group

ALERTING_DIR = Path("deploy/grafana/provisioning/alerting")
PROMETHEUS_UID = "prometheus"
EXPR_UID = "__expr__"
ORG_ID = 1
FOLDER = "otel-tokens"
CONTACT_POINT = "otel-tokens-alerts"
PLACEHOLDER_EMAIL = "otel-tokens-alerts@example.com"
_RULE_KEYS = (
    "uid",
    "title",
    "condition",
    "data",
    "noDataState",
    "execErrState",
    "for",
    "labels",
    "annotations",
)


def sdk_rule(alert: Alert, group: str, title: str) -> alerting.Rule:
    """The rule as the SDK builds it (HTTP-API shape)."""
    query = prometheus.Dataquery().expr(alert.expr).instant().ref_id("A")
    reduce = (
        expr.TypeReduce()
        .expression("A")
        .reducer("last")
        .settings(expr.ExprTypeReduceSettings().mode("dropNN"))
    )
    threshold = (
        expr.TypeThreshold()
        .expression("B")
        .conditions(
            [
                expr.ExprTypeThresholdConditions().evaluator(
                    expr.ExprTypeThresholdConditionsEvaluator().type("gt").params([0])
                )
            ]
        )
    )
    return (
        alerting.Rule(title)
        .uid(alert.uid)
        .org_id(ORG_ID)
        .folder_uid(FOLDER)
        .rule_group(group)
        .condition("C")
        .for_val(alert.for_)
        .no_data_state("OK")  # no series means nothing is wrong
        .exec_err_state("Error")
        .labels({k: v.replace("$", "$$") for k, v in alert.all_labels().items()})  # labels are env-expanded
        .annotations(_grafana_annotations(alert))
        .with_query(
            alerting.Query("A")
            .datasource_uid(PROMETHEUS_UID)
            .relative_time_range(alerting_models.RelativeTimeRange(from_val=600, to=0))
            .model(query)
        )
        .with_query(alerting.Query("B").datasource_uid(EXPR_UID).model(reduce.ref_id("B")))
        .with_query(alerting.Query("C").datasource_uid(EXPR_UID).model(threshold.ref_id("C")))
    )


def _grafana_annotations(alert: Alert) -> dict[str, str]:
    """Prometheus templates use `$labels`, which Grafana supports too; annotations are not env-expanded."""
    return alert.annotations()


def _to_json(builder: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


def provisioning_rule(api_rule: dict[str, Any]) -> dict[str, Any]:
    """HTTP-API rule (SDK output) -> file-provisioning rule: group-level keys dropped, order fixed."""
    return {key: api_rule[key] for key in _RULE_KEYS if key in api_rule} | {"isPaused": False}


def titles(rules: Sequence[Alert]) -> list[str]:
    """Grafana titles: the alert name, plus the budget name where one alert name has several rules."""
    names = [r.name for r in rules]
    return [
        r.name if names.count(r.name) == 1 else f"{r.name} {r.uid.removeprefix('otel-tokens-')}"
        for r in rules
    ]


def rules_file(rule_groups: Sequence[Group]) -> dict[str, Any]:
    groups = []
    for group in rule_groups:
        alerts = [r for r in group.rules if isinstance(r, Alert)]
        if not alerts:
            continue
        rules = [
            provisioning_rule(_to_json(sdk_rule(a, group.name, t)))
            for a, t in zip(alerts, titles(alerts), strict=True)
        ]
        groups.append(
            {
                "orgId": ORG_ID,
                "name": group.name,
                "folder": FOLDER,
                "interval": group.interval,
                "rules": rules,
            }
        )
    return {"apiVersion": 1, "groups": groups}


def notifications_file() -> dict[str, Any]:
    contact = (
        alerting.ContactPoint()
        .uid(CONTACT_POINT)
        .name(CONTACT_POINT)
        .type("email")
        .settings({"addresses": PLACEHOLDER_EMAIL, "singleEmail": True})
        .disable_resolve_message(False)
    )
    api = _to_json(contact)
    receiver = {k: api[k] for k in ("uid", "type", "settings", "disableResolveMessage")}
    policy = _to_json(
        alerting.NotificationPolicy()
        .receiver(CONTACT_POINT)
        .group_by(["grafana_folder", "alertname"])
        .group_wait("30s")
        .group_interval("5m")
        .repeat_interval("4h")
    )
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": ORG_ID, "name": api["name"], "receivers": [receiver]}],
        "policies": [{"orgId": ORG_ID, **policy}],
    }


def write(repo_root: Path, rule_groups: Sequence[Group]) -> list[Path]:
    header = GENERATED + "\nThe contact point is a placeholder: see src/otel_tokens/stack/grafana_alerts.py."
    return [
        _yaml.write(repo_root / ALERTING_DIR / "otel-tokens-rules.yaml", rules_file(rule_groups), GENERATED),
        _yaml.write(
            repo_root / ALERTING_DIR / "otel-tokens-notifications.yaml", notifications_file(), header
        ),
    ]
