"""The generated Grafana dashboards: build, serialise, and enumerate their queries.

`scripts/generate-stack` writes `dashboards/<uid>.json` from `write_all`. Output is
deterministic (sorted keys, panel ids in layout order, trailing newline) so a test can fail
when the committed files drift from this code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from otel_tokens.budgets.policy import Policy
from otel_tokens.stack import dashboards_anomalies, dashboards_budgets, dashboards_spend, dashboards_tasks
from otel_tokens.stack.dashboards_common import DATASOURCE_UIDS, VARIABLES, substitute

DASHBOARDS_DIR = Path("dashboards")
BUILDERS: dict[str, Callable[[], gd.Dashboard]] = {
    dashboards_spend.UID: dashboards_spend.build,
    dashboards_tasks.UID: dashboards_tasks.build,
    dashboards_anomalies.UID: dashboards_anomalies.build,
    dashboards_budgets.UID: dashboards_budgets.build,  # the default budget file's; see render()
}

__all__ = [
    "DATASOURCE_UIDS",
    "VARIABLES",
    "all_panel_queries",
    "all_traceql_queries",
    "iter_panels",
    "render",
    "substitute",
    "write_all",
]


def render(uid: str, policy: Policy | None = None) -> dict[str, Any]:
    """The dashboard as Grafana JSON (a dict), with stable panel ids; `policy`: the budget file's."""
    board = dashboards_budgets.build(policy) if uid == dashboards_budgets.UID else BUILDERS[uid]()
    model: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    for i, panel in enumerate(iter_panels(model), start=1):
        panel["id"] = i
    return model


def dumps(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(repo_root: Path, policy: Policy | None = None) -> list[Path]:
    out_dir = repo_root / DASHBOARDS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid in BUILDERS:
        path = out_dir / f"{uid}.json"
        path.write_text(dumps(render(uid, policy)), encoding="utf-8")
        written.append(path)
    return written


def iter_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel in layout order, rows included, panels of collapsed rows right after their row."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _targets(kind: str) -> Iterator[tuple[str, str, str, str]]:
    for uid in BUILDERS:
        for panel in iter_panels(render(uid)):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == kind:
                    yield (
                        uid,
                        panel["title"],
                        target["refId"],
                        target["expr" if kind == "prometheus" else "query"],
                    )


def all_panel_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, refId, PromQL with Grafana variables) of every Prometheus target."""
    return list(_targets("prometheus"))


def all_traceql_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, refId, TraceQL) of every Tempo target."""
    return list(_targets("tempo"))
