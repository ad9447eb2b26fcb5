"""Grafana cannot run here, so its inputs are checked as Grafana 11.6 reads them.

* Lint: every committed dashboard, alert rule, contact point and notification policy is
  parsed by the models of the pinned grafana-foundation-sdk (the 11.6 schema compose runs)
  and written back; a key the schema does not know is lost on the way, a value is changed or
  not one of the schema's choices -> a lint error naming the file and the JSON path. The
  lint itself is tested on mutated copies (it must catch an unknown key at each level).
* Provisioning shape (Grafana 11.6 "Provision Grafana" docs): datasources, dashboard
  providers and alerting files have the documented top-level keys and required fields;
  every datasource uid a panel, a target, a variable, an alert query or another datasource
  refers to is provisioned; alert rule folders are the dashboards' provisioned folder;
  every contact point a policy or rule names exists; every alert condition and expression
  refers to a query of its rule.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.models import alerting
from grafana_foundation_sdk.models.dashboard import Dashboard

from .conftest import REPO

PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
RULES_FILE = PROVISIONING / "alerting" / "otel-tokens-rules.yaml"
NOTIFICATIONS_FILE = PROVISIONING / "alerting" / "otel-tokens-notifications.yaml"
EXPRESSION_UID = "__expr__"  # Grafana's server-side expressions pseudo-datasource

plugins.register_default_plugins()


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


def plain(value: Any) -> Any:
    """The SDK model's JSON (models nest models) as plain dicts and lists."""
    return json.loads(json.dumps(value, default=lambda o: o.to_json()))


def lost(original: Any, written: Any, path: str = "$") -> Iterator[str]:
    """Where `written` (the SDK's round trip) lost or changed what `original` had."""
    if isinstance(original, dict):
        if not isinstance(written, dict):
            yield f"{path}: not an object in the schema"
            return
        for key, value in original.items():
            if key not in written:
                yield f"{path}.{key}: not in the schema"
            else:
                yield from lost(value, written[key], f"{path}.{key}")
    elif isinstance(original, list):
        if not isinstance(written, list) or len(original) != len(written):
            yield f"{path}: not a list of the same length in the schema"
            return
        for i, (a, b) in enumerate(zip(original, written, strict=True)):
            yield from lost(a, b, f"{path}[{i}]")
    elif original != written and not (isinstance(original, int | float) and original == written):
        yield f"{path}: {original!r} became {written!r}"


def literal_choices(cls: type, attr: str) -> tuple[Any, ...]:
    hint = typing.get_type_hints(cls)[attr]
    return typing.get_args(hint)


def lint_dashboard(data: dict[str, Any]) -> list[str]:
    return list(lost(data, plain(Dashboard.from_json(data))))


def provisioned_rule_as_api(group: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    """A file-provisioned rule in the shape of the SDK's (the HTTP API's) Rule model."""
    return {**rule, "ruleGroup": group["name"], "orgID": group["orgId"], "folderUID": group["folder"]}


def lint_rule(group: dict[str, Any], rule: dict[str, Any]) -> list[str]:
    api = provisioned_rule_as_api(group, rule)
    errors = list(lost(api, plain(alerting.Rule.from_json(api)), f"$.{rule.get('uid')}"))
    for attr, key in (("exec_err_state", "execErrState"), ("no_data_state", "noDataState")):
        choices = literal_choices(alerting.Rule, attr)
        if rule.get(key) not in choices:
            errors.append(f"$.{rule.get('uid')}.{key}: {rule.get(key)!r} is not one of {choices}")
    return errors


def lint_notifications(data: dict[str, Any]) -> list[str]:
    errors = []
    for cp in data.get("contactPoints", []):
        for receiver in cp["receivers"]:
            api = {"name": cp["name"], **receiver}
            errors += lost(api, plain(alerting.ContactPoint.from_json(api)), f"$.contactPoints.{cp['name']}")
    for policy in data.get("policies", []):
        api = {k: v for k, v in policy.items() if k != "orgId"}
        errors += lost(api, plain(alerting.NotificationPolicy.from_json(api)), "$.policies")
    return errors


# --- lint ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_matches_the_pinned_schema(path: Path) -> None:
    assert not lint_dashboard(load(path)), path


def test_every_alert_rule_matches_the_pinned_schema() -> None:
    errors = [e for g in load(RULES_FILE)["groups"] for r in g["rules"] for e in lint_rule(g, r)]
    assert not errors, f"{RULES_FILE}:\n" + "\n".join(errors)


def test_contact_points_and_policies_match_the_pinned_schema() -> None:
    errors = lint_notifications(load(NOTIFICATIONS_FILE))
    assert not errors, f"{NOTIFICATIONS_FILE}:\n" + "\n".join(errors)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(data)
    node: Any = mutated
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return mutated


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("dashboard", ("bogusKey",)),
        ("panel", ("panels", 0, "bogusKey")),
        ("panel options", ("panels", "P", "options", "bogusKey")),
        ("field config", ("panels", "P", "fieldConfig", "defaults", "bogusKey")),
        ("variable", ("templating", "list", 0, "bogusKey")),
    ],
)
def test_the_dashboard_lint_catches_unknown_keys(where: str, path: tuple[Any, ...]) -> None:
    data = load(REPO / "dashboards" / "otel-tokens-spend.json")
    first = next(i for i, p in enumerate(data["panels"]) if "options" in p and "fieldConfig" in p)
    errors = lint_dashboard(_set(data, tuple(first if k == "P" else k for k in path), 1))
    assert any("bogusKey: not in the schema" in e for e in errors), (where, errors)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bogusKey", 1, "not in the schema"),
        ("noDataState", "Maybe", "is not one of"),
        ("execErrState", "Later", "is not one of"),
    ],
)
def test_the_rule_lint_catches_bad_rules(key: str, value: Any, message: str) -> None:
    group = load(RULES_FILE)["groups"][0]
    rule = {**group["rules"][0], key: value}
    assert any(message in e for e in lint_rule(group, rule)), lint_rule(group, rule)


# --- provisioning shape and references ----------------------------------------------------------------
def datasources() -> dict[str, dict[str, Any]]:
    data = load(PROVISIONING / "datasources" / "datasources.yaml")
    assert data["apiVersion"] == 1 and set(data) <= {"apiVersion", "datasources", "deleteDatasources"}
    for d in data.get("deleteDatasources", []):
        assert set(d) == {"name", "orgId"}, d
    out = {}
    for d in data["datasources"]:
        assert {"name", "type", "uid", "access", "url"} <= set(d), d
        assert d["access"] in ("proxy", "direct") and len(d["uid"]) <= 40, d
        out[d["uid"]] = d
    assert sum(bool(d.get("isDefault")) for d in out.values()) <= 1
    return out


def uid_refs(node: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """(path, uid) of every datasource reference: {"datasource": {"uid": ...}} and the
    provisioning spellings datasourceUid / datasourceUID."""
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            yield f"{path}.datasource", str(ds["uid"])
        for key in ("datasourceUid", "datasourceUID"):
            if key in node:
                yield f"{path}.{key}", str(node[key])
        for key, value in node.items():
            yield from uid_refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from uid_refs(value, f"{path}[{i}]")


def test_every_referenced_datasource_uid_is_provisioned() -> None:
    known = datasources()
    sources: list[tuple[Path, Any]] = [(p, load(p)) for p in DASHBOARDS]
    sources += [(RULES_FILE, load(RULES_FILE)), (PROVISIONING / "datasources" / "datasources.yaml", known)]
    missing = [
        f"{path.name}:{where} -> {uid}"
        for path, data in sources
        for where, uid in uid_refs(data)
        if uid not in known and uid != EXPRESSION_UID and not uid.startswith("${")
    ]
    assert not missing, "datasource uids that are not provisioned:\n" + "\n".join(missing)
    refs = sum(1 for _, data in sources for _ in uid_refs(data))
    assert refs > 100  # the walk does find the references


def test_dashboard_provider_shape_and_alert_folders_resolve() -> None:
    data = load(PROVISIONING / "dashboards" / "dashboards.yaml")
    assert data["apiVersion"] == 1 and set(data) == {"apiVersion", "providers"}
    (provider,) = data["providers"]
    assert {"name", "type", "options"} <= set(provider) and provider["type"] == "file"
    assert "path" in provider["options"]
    rules = load(RULES_FILE)
    assert rules["apiVersion"] == 1 and set(rules) <= {"apiVersion", "groups", "deleteRules"}
    for group in rules["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group), group["name"]
        # the rules live in the folder the dashboards are provisioned into (created by it)
        assert group["folder"] in (provider["folder"], provider.get("folderUid")), group["folder"]


def test_alert_conditions_and_expressions_refer_to_their_queries() -> None:
    for group in load(RULES_FILE)["groups"]:
        for rule in group["rules"]:
            refs = {q["refId"] for q in rule["data"]}
            assert rule["condition"] in refs, rule["uid"]
            for q in rule["data"]:
                assert q["model"].get("refId", q["refId"]) == q["refId"], rule["uid"]
                if q["datasourceUid"] == EXPRESSION_UID:
                    assert q["model"]["expression"] in refs, (rule["uid"], q["refId"])
                else:
                    assert {"from", "to"} <= set(q["relativeTimeRange"]), rule["uid"]


def test_every_named_contact_point_exists() -> None:
    data = load(NOTIFICATIONS_FILE)
    assert data["apiVersion"] == 1
    names = {cp["name"] for cp in data["contactPoints"]}
    for cp in data["contactPoints"]:
        for receiver in cp["receivers"]:
            assert {"uid", "type", "settings"} <= set(receiver), cp["name"]

    def receivers(policy: dict[str, Any]) -> Iterator[str]:
        if "receiver" in policy:
            yield policy["receiver"]
        for route in policy.get("routes", []):
            yield from receivers(route)

    named = [r for p in data["policies"] for r in receivers(p)]
    for group in load(RULES_FILE)["groups"]:
        for rule in group["rules"]:
            if "notification_settings" in rule:
                named.append(rule["notification_settings"]["receiver"])
    assert named and set(named) <= names, (named, names)
