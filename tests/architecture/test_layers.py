"""The package's shape stays true: imports flow one way through the layers, with no cycles.

Layers, lowest first (a module may import its own subpackage and anything lower):
  0  names, record, guard, version,     the vocabulary every layer shares, the hook that
     firstuse, deferred, sqlite,        configures providers at first use, the queue
     httpserve                          finalisers defer work to (run at safe points), the
                                        SQLite set-up the ledger and the store share, and the
                                        threaded HTTP serving the receiver and fake LLM share
  1  budgets                            the budget file, verdicts and ledger (pricer passed in),
                                        read at run time by instrumentation and by stack
  2  pricing, attribution, store,       peers that never import each other
     fakellm, stack
  3  telemetry                          record -> span attributes and metric points
  4  instrumentation, agents            patching and SDK adapters; coding-agent CLIs' telemetry
  5  distro                             providers from the environment, start-up
  6  cli                                the otel-tokens command
  7  otel_tokens (the public API), __main__, _autostart

The one upward edge allowed: the demo (cli) drives the public API as a user's code would.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "otel_tokens"

LAYERS: dict[str, int] = {
    "names": 0,
    "record": 0,
    "guard": 0,
    "version": 0,
    "firstuse": 0,
    "deferred": 0,
    "sqlite": 0,
    "httpserve": 0,
    "budgets": 1,
    "settings": 1,
    "pricing": 2,
    "attribution": 2,
    "store": 2,
    "fakellm": 2,
    "stack": 2,
    "telemetry": 3,
    "instrumentation": 4,
    "agents": 4,
    "distro": 5,
    "cli": 6,
    "": 7,
    "__main__": 7,
    "_autostart": 7,
}

ALLOWED = {("cli", "")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part(module: str) -> str:
    """'otel_tokens.telemetry.recorder' -> 'telemetry'; the package itself -> ''."""
    rest = module.split(".")[1:]
    return rest[0] if rest else ""


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, imported otel_tokens module) for every import, including function-level ones."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                known = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py"
                ).exists()
                yield node.lineno, candidate if known else base


def graph() -> dict[str, set[tuple[int, str]]]:
    edges: dict[str, set[tuple[int, str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        edges[name] = {
            (line, m) for line, m in imports(path) if m.split(".")[0] == "otel_tokens" and m != name
        }
    return edges


def test_every_part_has_a_layer() -> None:
    assert {part(m) for m in graph()} <= set(LAYERS), "add the new subpackage to LAYERS and its docstring"


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc, f"{init}: the docstring must say what the subpackage may import"


def test_imports_flow_down_the_layers() -> None:
    wrong = []
    for module, targets in graph().items():
        here = part(module)
        for line, target in sorted(targets):
            there = part(target)
            if there != here and LAYERS[there] >= LAYERS[here] and (here, there) not in ALLOWED:
                wrong.append(f"{module}:{line} imports {target} (layer {LAYERS[there]} >= {LAYERS[here]})")
    assert wrong == []


def test_no_import_cycles() -> None:
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    edges = {m: {t for _, t in targets if t in modules} for m, targets in graph().items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    # the package itself is imported by every submodule's import machinery, not by a cycle
    assert [c for c in cycles if "otel_tokens" not in c] == []


@pytest.mark.parametrize("name", ["instrument", "uninstrument", "task", "agent", "__version__"])
def test_public_api_stays_where_users_find_it(name: str) -> None:
    import otel_tokens

    assert getattr(otel_tokens, name) is not None
