"""Printing reports: Rich tables and trees for people, exact JSON and CSV for machines.

JSON numbers are written as exact decimal literals (``"cost_usd": 0.003085``): parse them
with ``json.loads(text, parse_float=decimal.Decimal)`` to keep every digit; a plain float
parse gives the nearest double. CSV uses the same literals.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from otel_tokens.cli.report import OUTLIER_FACTOR, Group, Report, TopRun, pico_to_usd
from otel_tokens.store.tree import Node

NONE_LABEL = "(none)"
_LABELS = {"task": "Task", "user": "User", "team": "Team", "model": "Model", "provider": "Provider",
           "pipeline": "Pipeline", "agent": "Agent"}  # fmt: skip


# --- numbers -------------------------------------------------------------------------


def usd(pico: int | Decimal | None) -> str:
    """Readable currency: $1,234.56, $0.123, $0.00042."""
    if pico is None:
        return "-"
    value = pico_to_usd(pico)
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) >= Decimal("0.01"):
        return f"${value:.3f}"
    digits = 1 - value.copy_abs().adjusted()  # two significant digits: $0.0042, $0.000034
    return f"${value:.{digits}f}"


def count(value: int | None) -> str:
    if value is None:
        return "-"
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**4, "k")):
        if abs(value) >= limit:
            return f"{value / (limit if suffix != 'k' else 1000):,.1f}{suffix}"
    return f"{value:,}"


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).strftime("%Y-%m-%d %H:%M")


def _key(group: Group) -> str:
    return group.key or NONE_LABEL


# --- machine output --------------------------------------------------------------------


def _row(report: Report, group: Group, for_csv: bool) -> dict[str, Any]:
    s = group.sums
    median = group.loop_depth_median
    per_success = group.cost_per_successful_task_pusd
    row: dict[str, Any] = {
        report.by: group.key or None,
        "cost_usd": pico_to_usd(s["cost_pusd"]),
        "calls": s["calls"],
        "runs": group.runs,
        "input_tokens": s["input_tokens"],
        "output_tokens": s["output_tokens"],
        "cache_read_tokens": s["cache_read_tokens"],
        "cache_write_tokens": s["cache_write_tokens"],
        "reasoning_tokens": s["reasoning_tokens"],
        "cache_savings_usd": pico_to_usd(s["cache_savings_pusd"]),
        "retries": s["retries"],
        "loop_repeats": s["loop_repeats"],
        "failed_calls": s["failed_calls"],
        "unpriced_calls": group.unpriced_calls,
        "tasks": group.tasks,
        "successful_tasks": group.successful_tasks,
        "failed_tasks": group.failed_tasks,
        "loop_depth_median": median.normalize() if median is not None else None,
        "loop_depth_max": group.loop_depth_max,
        "cost_per_successful_task_usd": pico_to_usd(per_success) if per_success is not None else None,
        "failed_task_spend_usd": pico_to_usd(group.failed_cost_pusd),
    }
    if report.by == "task":
        row["outlier_runs"] = len(group.outliers)
        if not for_csv:
            row["outliers"] = [
                {"task_id": o.task_id, "size": o.size or None, "cost_usd": pico_to_usd(o.cost_pusd),
                 "peer_median_usd": pico_to_usd(o.peer_median_pusd), "peers": o.peers}
                for o in group.outliers
            ]  # fmt: skip
    return row


def _literal(value: Any) -> str:
    """Exact JSON text: Decimals as decimal literals, never through float."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return json.dumps(value)


def write_json(rows: Iterable[dict[str, Any]], out: IO[str]) -> None:
    items = [_literal(r) for r in rows]
    out.write("[\n" + ",\n".join(f"  {item}" for item in items) + "\n]\n" if items else "[]\n")


def write_csv(rows: list[dict[str, Any]], out: IO[str]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else format(v, "f") if isinstance(v, Decimal) else v
                         for k, v in row.items()})  # fmt: skip
    out.write(buf.getvalue())


def report_rows(report: Report, for_csv: bool = False) -> list[dict[str, Any]]:
    return [_row(report, g, for_csv) for g in report.groups]


def top_rows(runs: list[TopRun]) -> list[dict[str, Any]]:
    return [
        {"id": r.ident, "kind": "task" if r.run.task_id else "trace", "task": r.run.task_name or None,
         "size": r.run.task_size or None, "trace_id": r.trace_id.hex() or None,
         "cost_usd": pico_to_usd(r.run.sums.cost_pusd), "calls": r.run.sums.calls,
         "retries": r.run.sums.retries, "unpriced_calls": r.run.sums.calls - r.run.sums.priced_calls,
         "outcome": r.outcome, "started": datetime.fromtimestamp(r.run.first_ns / 1e9).isoformat()}
        for r in runs
    ]  # fmt: skip


# --- people output ---------------------------------------------------------------------


def print_report(report: Report, console: Console, window_label: str) -> None:
    by = report.by
    title = f"AI spend by {by}, {window_label}"
    if report.window.task:
        title += f", task {report.window.task}"
    table = Table(title=title, title_justify="left", header_style="bold", show_footer=True, box=None,
                  pad_edge=False, collapse_padding=True)  # fmt: skip
    t = report.total
    right = {"justify": "right", "no_wrap": True}
    columns = [
        (_LABELS[by], "total", {"no_wrap": True}),
        ("Cost", usd(t.sums["cost_pusd"]), {**right, "style": "bold"}),
        ("Calls", count(t.sums["calls"]), right),
        ("Tasks", count(t.tasks), right),
        ("Loop depth\nmed / max", _depth(t), right),
        ("Cost per\nsuccess", usd(t.cost_per_successful_task_pusd), right),
        ("Spent on\nfailures", _failed(t), right),
        ("Tokens\nin", count(t.sums["input_tokens"]), right),
        ("Tokens\nout", count(t.sums["output_tokens"]), right),
        ("Cache\nsaved", usd(t.sums["cache_savings_pusd"]), right),
        ("Retries", count(t.sums["retries"]), right),
        ("Unpriced\ncalls", count(t.unpriced_calls), right),
    ]
    if by == "task":
        columns.append(("Outliers", count(len(t.outliers)), right))
    for header, footer, options in columns:
        table.add_column(header, footer=footer, **options)  # type: ignore[arg-type]
    for g in report.groups:
        unpriced = Text("unpriced", style="yellow")
        priced = g.sums["priced_calls"] > 0
        cells: list[Text | str] = [
            Text(_key(g), style="dim" if not g.key else ""),
            usd(g.sums["cost_pusd"]) if priced else unpriced,
            count(g.sums["calls"]), count(g.tasks), _depth(g),
            usd(g.cost_per_successful_task_pusd) if priced else unpriced, _failed(g),
            count(g.sums["input_tokens"]), count(g.sums["output_tokens"]), usd(g.sums["cache_savings_pusd"]),
            count(g.sums["retries"]),
            Text(count(g.unpriced_calls), style="yellow" if g.unpriced_calls else ""),
        ]  # fmt: skip
        if by == "task":
            cells.append(Text(str(len(g.outliers)), style="bold red") if g.outliers else Text("-"))
        table.add_row(*cells)
    console.print(table)
    if by in ("user", "team"):
        console.print(
            Text(f"Sorted by {by} name, not by cost: spend follows the work people are given.\n"
                 "Compare runs of the same task instead: otel-tokens report", style="dim")
        )  # fmt: skip
    if by == "task" and t.outliers:
        console.print()
        console.print(
            Text(
                f"Outlier runs (over {OUTLIER_FACTOR}x the median of runs of the same task and size):",
                style="bold",
            )
        )
        for o in t.outliers[:10]:
            console.print(
                f"  [red]{o.ratio:.1f}x[/red] {o.task_name} [{o.size or '-'}] {usd(o.cost_pusd)} vs median "
                f"{usd(o.peer_median_pusd)} of {o.peers} runs   otel-tokens trace {o.task_id}",
                highlight=False,
                markup=True,
            )
        if len(t.outliers) > 10:
            console.print(f"  ... and {len(t.outliers) - 10} more (--json lists all)", style="dim")
    if t.unpriced_calls:
        console.print(Text(f"{t.unpriced_calls} calls have no price (unknown model or no usage); "
                           "their cost is not in the totals. Add prices with OTEL_TOKENS_PRICES.",
                           style="yellow"))  # fmt: skip


def _depth(g: Group) -> str:
    median = g.loop_depth_median
    return "-" if median is None else f"{median.normalize():f} / {g.loop_depth_max}"


def _failed(g: Group) -> str:
    return "-" if not g.failed_tasks else f"{usd(g.failed_cost_pusd)} ({g.failed_tasks})"


def print_top(runs: list[TopRun], console: Console, window_label: str) -> None:
    table = Table(title=f"Most expensive runs, {window_label}", title_justify="left", header_style="bold",
                  box=None, pad_edge=False)  # fmt: skip
    for name, justify in (("#", "right"), ("Cost", "right"), ("Task", "left"), ("Size", "left"),
                          ("Calls", "right"), ("Retries", "right"), ("Outcome", "left"), ("Started", "left"),
                          ("ID (otel-tokens trace ID)", "left")):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=name != "Task")  # type: ignore[arg-type]
    for i, r in enumerate(runs, 1):
        s = r.run.sums
        outcome = r.outcome or ("-" if r.run.task_id else "no task")
        table.add_row(
            str(i), usd(s.cost_pusd), r.run.task_name or NONE_LABEL, r.run.task_size or "-", count(s.calls),
            count(s.retries),
            Text(outcome, style="red" if outcome not in ("success", "-", "no task") else ""),
            _when(r.run.first_ns), Text(r.ident, style="cyan"),
        )  # fmt: skip
    console.print(table)


def print_trees(
    roots_by_trace: list[tuple[bytes, list[Node]]], console: Console, task_id: str | None
) -> None:
    for trace_id, roots in roots_by_trace:
        cost = sum(r.cost_pusd for r in roots)
        calls = sum(r.calls for r in roots)
        head = Text(f"task {task_id}  " if task_id else "", style="bold")
        head.append(f"trace {trace_id.hex()}  ")
        head.append(usd(cost), style="bold")
        head.append(f"  {calls} LLM calls")
        tree = Tree(head, guide_style="dim")
        for root in roots:
            _add_node(tree, root, None)
        console.print(tree)
        console.print(Text("▶ marks the most expensive path.", style="dim"))


_MAX_CHILDREN = 40


def _add_node(parent: Tree, node: Node, parent_pid: int | None) -> None:
    branch = parent.add(_label(node, parent_pid))
    for event in node.events:
        branch.add(_event(event))
    children = node.children
    if len(children) > _MAX_CHILDREN:
        keep = children[: _MAX_CHILDREN // 2] + children[-_MAX_CHILDREN // 4 :]
        hidden = [c for c in children if c not in keep]
        hot = [c for c in hidden if c.hot]
        for child in keep[: _MAX_CHILDREN // 2] + hot:
            _add_node(branch, child, node.pid)
        rest = [c for c in hidden if not c.hot]
        branch.add(Text(f"... {len(rest)} more spans, {usd(sum(c.cost_pusd for c in rest))}, "
                        f"{sum(c.calls for c in rest)} LLM calls", style="dim"))  # fmt: skip
        for child in keep[_MAX_CHILDREN // 2 :]:
            _add_node(branch, child, node.pid)
        return
    for child in children:
        _add_node(branch, child, node.pid)


def _label(node: Node, parent_pid: int | None) -> Text:
    d = node.detail
    style = "bold magenta" if node.hot else ""
    text = Text("▶ " if node.hot else "", style="bold magenta")
    kind = {"task": "task", "agent": "agent", "llm": "", "span": ""}[node.kind]
    if kind:
        text.append(f"{kind} ", style="dim")
    text.append(node.label, style=style or ("bold" if node.kind == "task" else ""))
    if node.kind == "task":
        text.append(f" [{d.get('size') or '-'}] {d.get('task_id')}", style="dim")
        outcome = d.get("outcome")
        if outcome:
            text.append(f" {outcome}", style="green" if outcome == "success" else "red")
    if node.pid is not None and parent_pid is not None and node.pid != parent_pid:
        text.append(f" (subprocess pid {node.pid})", style="cyan")
    if node.calls:  # spans without LLM calls below them (tools, scripts) show only their time
        text.append("  ")
        text.append(usd(node.cost_pusd) if not (node.unpriced and node.kind == "llm") else "unpriced",
                    style="bold magenta" if node.hot else "bold")  # fmt: skip
        if node.unpriced and node.kind != "llm":
            text.append(f" +{node.unpriced} unpriced", style="yellow")
        text.append(f"  {count(node.input_tokens)} in / {count(node.output_tokens)} out", style="dim")
    if node.kind != "llm" and node.calls:
        text.append(f"  {node.calls} call{'' if node.calls == 1 else 's'}", style="dim")
    text.append(f"  {node.duration_s:.2f}s", style="dim")
    if node.kind == "llm":
        if d.get("source"):  # a coding agent's call (absent: an SDK call in Python)
            text.append(f"  via {d['source']}", style="cyan")
        if d.get("cache_read"):
            text.append(f"  cache {count(d['cache_read'])}", style="dim")
        if node.retries:
            text.append(f"  {node.retries} retr{'y' if node.retries == 1 else 'ies'}", style="yellow")
        if d.get("loop_repeat"):
            text.append("  repeat", style="yellow")
        if d.get("outcome") and d["outcome"] != "success":
            text.append(
                f"  {d['outcome']}{' ' + d['error_type'] if d.get('error_type') else ''}", style="red"
            )
    elif node.retries:
        text.append(f"  {node.retries} retries", style="yellow")
    if node.kind == "span" and d.get("status") == 2:
        text.append(f"  error {d.get('error_type') or ''}".rstrip(), style="red")
    return text


def _event(event: dict[str, Any]) -> Text:
    attrs = event.get("attrs") or {}
    parts = [str(event.get("name", "event")).rsplit(".", 1)[-1]]
    parts += [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in attrs.items()]
    return Text("↻ " + " ".join(parts), style="yellow")
