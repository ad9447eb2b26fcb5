"""The span tree of one trace as `otel-tokens trace` shows it.

Nodes come from the three span tables. A node's cost, tokens and call count are those
of the LLM calls in its subtree; the expensive path follows, from each root, the child
with the highest subtree cost. Spans whose parent was never stored (a process killed
before its batch was flushed, or a parent outside the store) become extra roots.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_tokens import names as n

Kind = Literal["task", "agent", "llm", "span"]


@dataclass(slots=True)
class Node:
    kind: Kind
    span_id: bytes
    parent_id: bytes | None
    start_ns: int
    end_ns: int
    label: str
    detail: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    pid: int | None = None
    cost_pusd: int = 0
    unpriced: int = 0
    calls: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    children: list[Node] = field(default_factory=list)
    hot: bool = False  # on the most expensive path

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _pid(attrs: Any) -> int | None:
    value = attrs.get(n.PROCESS_PID) if isinstance(attrs, dict) else None
    return value if isinstance(value, int) else None


def build_tree(rows: dict[str, list[sqlite3.Row]]) -> list[Node]:
    """Roots of the trace, children ordered by start time, totals rolled up."""
    nodes: dict[bytes, Node] = {}
    for r in rows["tasks"]:
        attrs = _json(r["attrs"])
        nodes[r["span_id"]] = Node(
            "task", r["span_id"], r["parent_id"], r["start_ns"], r["end_ns"], r["name"] or "task",
            {"task_id": r["task_id"], "size": r["size"], "outcome": r["outcome"], "status": r["status_code"]},
            pid=_pid(attrs),
        )  # fmt: skip
    for r in rows["spans"]:
        attrs = _json(r["attrs"])
        kind: Kind = "agent" if r["operation"] == n.OP_INVOKE_AGENT else "span"
        nodes[r["span_id"]] = Node(
            kind, r["span_id"], r["parent_id"], r["start_ns"], r["end_ns"], r["name"] or "span",
            {"status": r["status_code"], "error_type": r["error_type"]},
            events=_json(r["events"]) or [], pid=_pid(attrs),
        )  # fmt: skip
    for r in rows["llm_calls"]:
        model = r["response_model"] or r["request_model"] or "?"
        node = Node(
            "llm", r["span_id"], r["parent_id"], r["start_ns"], r["end_ns"], f"{r['operation']} {model}",
            {"provider": r["provider"], "outcome": r["outcome"], "error_type": r["error_type"],
             "cost_status": r["cost_status"], "iteration": r["iteration"], "loop_repeat": r["loop_repeat"],
             "cache_read": r["cache_read_tokens"] or 0, "reasoning": r["reasoning_tokens"] or 0,
             "source": (_json(r["attrs"]) or {}).get(n.SOURCE)},
            events=_json(r["events"]) or [],
        )  # fmt: skip
        node.cost_pusd = r["cost_pusd"] or 0
        node.unpriced = 1 if r["cost_pusd"] is None else 0
        node.calls = 1
        node.retries = r["retries"] or 0
        node.input_tokens = r["input_tokens"] or 0
        node.output_tokens = r["output_tokens"] or 0
        nodes[r["span_id"]] = node
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id is not None else None
        (parent.children if parent is not None else roots).append(node)
    for root in roots:
        _roll_up(root, None)
    roots.sort(key=lambda x: x.start_ns)
    for root in roots:
        _mark_hot(root)
    return roots


def _roll_up(node: Node, parent_pid: int | None) -> None:
    # Iterative post-order: a runaway loop can make trees deeper than Python's recursion limit.
    stack: list[tuple[Node, int | None, bool]] = [(node, parent_pid, False)]
    while stack:
        current, inherited, done = stack.pop()
        if not done:
            if current.pid is None:
                current.pid = inherited
            current.children.sort(key=lambda c: c.start_ns)
            stack.append((current, inherited, True))
            stack.extend((child, current.pid, False) for child in current.children)
            continue
        for child in current.children:
            current.cost_pusd += child.cost_pusd
            current.unpriced += child.unpriced
            current.calls += child.calls
            current.retries += child.retries
            current.input_tokens += child.input_tokens
            current.output_tokens += child.output_tokens


def _mark_hot(root: Node) -> None:
    node: Node | None = root
    if root.cost_pusd <= 0:
        return
    while node is not None:
        node.hot = True
        priced = [c for c in node.children if c.cost_pusd > 0]
        node = max(priced, key=lambda c: c.cost_pusd) if priced else None
