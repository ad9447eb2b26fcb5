"""`otel-tokens`: reports, top runs, trace trees and pruning over the local store.

Every command reads the store at ``--store``, else ``$OTEL_TOKENS_STORE``, else the
per-user default (see `otel_tokens.store.paths`). Errors are one line on stderr and exit
code 2; nothing here prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.console import Console

from otel_tokens import names as n
from otel_tokens.cli.oneline import EXIT_USAGE, OneLineParser
from otel_tokens.store.paths import default_store_path
from otel_tokens.store.schema import StoreError
from otel_tokens.version import __version__

_Parser = OneLineParser
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> int:
    """'30d' -> seconds. Units: s, m, h, d, w."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration like 90m, 24h, 7d or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Since:
    text: str
    ns: int

    @property
    def label(self) -> str:
        return f"last {self.text.strip()}" if _DURATION.match(self.text) else f"since {self.text.strip()}"


def parse_since(text: str) -> Since:
    """'24h', '7d' (ago) or a date/datetime ('2026-11-01', '2026-11-01T09:00', local time)."""
    if _DURATION.match(text):
        return Since(text, time.time_ns() - parse_duration(text) * 1_000_000_000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is neither a duration (24h, 7d) nor a date (2026-11-01 or 2026-11-01T09:00)"
        ) from None
    return Since(text, int(when.timestamp() * 1_000_000_000))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive whole number")
    return value


def _window_label(since: Since | None) -> str:
    return since.label if since is not None else "all recorded time"


def _since_ns(since: Since | None) -> int | None:
    return since.ns if since is not None else None


def _console() -> Console:
    tty = sys.stdout.isatty()
    width = None if tty or os.environ.get("COLUMNS") else 140
    return Console(highlight=False, width=width, soft_wrap=False)


def _store_path(args: argparse.Namespace) -> Path:
    return Path(args.store).expanduser() if args.store else default_store_path()


# --- commands ---------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    from otel_tokens.cli.render import print_report, report_rows, write_csv, write_json
    from otel_tokens.cli.report import build_report
    from otel_tokens.store.db import open_for_reading
    from otel_tokens.store.queries import Window

    conn = open_for_reading(_store_path(args))
    with conn:
        report = build_report(conn, args.by, Window(_since_ns(args.since), args.task))
    if args.json:
        write_json(report_rows(report), sys.stdout)
    elif args.csv:
        write_csv(report_rows(report, for_csv=True), sys.stdout)
    elif not report.groups:
        print(
            f"No LLM calls recorded ({_window_label(args.since)}"
            + (f", task {args.task})." if args.task else ").")
        )
    else:
        print_report(report, _console(), _window_label(args.since))
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from otel_tokens.cli.render import print_top, top_rows, write_json
    from otel_tokens.cli.report import build_top
    from otel_tokens.store.db import open_for_reading
    from otel_tokens.store.queries import Window

    conn = open_for_reading(_store_path(args))
    with conn:
        runs = build_top(conn, Window(_since_ns(args.since), None), args.limit)
    if args.json:
        write_json(top_rows(runs), sys.stdout)
    elif not runs:
        print(f"No LLM calls recorded ({_window_label(args.since)}).")
    else:
        print_top(runs, _console(), _window_label(args.since))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from otel_tokens.cli.render import print_trees
    from otel_tokens.store.db import open_for_reading
    from otel_tokens.store.queries import trace_rows, traces_of
    from otel_tokens.store.tree import build_tree

    path = _store_path(args)
    conn = open_for_reading(path)
    with conn:
        is_task, traces = traces_of(conn, args.id)
        if not traces:
            raise StoreError(f"no task or trace '{args.id}' in {path}; `otel-tokens top` lists ids to trace")
        trees = [(t, build_tree(trace_rows(conn, t))) for t in traces]
    print_trees(trees, _console(), args.id if is_task else None)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from otel_tokens.store.db import open_for_reading, write_tx
    from otel_tokens.store.queries import Pruned, prunable, prune, prune_cut

    path = _store_path(args)
    conn = open_for_reading(path)
    cutoff = time.time_ns() - args.older_than * 1_000_000_000
    with conn:
        if args.dry_run:  # counts by reading: never waits for, or blocks, a writing app
            result: Pruned = prunable(conn, cutoff)
        else:
            result = write_tx(conn, lambda c: prune(c, cutoff))
            if args.vacuum:
                conn.execute("VACUUM")
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {result.llm_calls} LLM calls, {result.tasks} tasks and {result.spans} other spans "
        f"that started before {datetime.fromtimestamp(prune_cut(cutoff) / 1e9):%Y-%m-%d %H:%M} from {path}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from otel_tokens.cli.demo import run_demo

    store = Path(args.store).expanduser() if args.store else None
    if store is not None and store.exists():
        from otel_tokens.store.db import open_for_writing

        open_for_writing(store).close()  # a foreign file: one clear line before any work
    return run_demo(store, args.tasks, args.seed)


def cmd_prices(args: argparse.Namespace) -> int:
    from otel_tokens.pricing.price_file import check_price_file

    parsed = check_price_file(args.file)
    for error in parsed.errors:
        print(f"otel-tokens: {error}", file=sys.stderr)
    if parsed.errors:
        return EXIT_USAGE
    hosts = f", {len(parsed.providers)} provider hosts" if parsed.providers else ""
    print(f"{args.file}: {len(parsed.overrides)} price entries{hosts}, all valid")
    return 0


def cmd_budgets(args: argparse.Namespace) -> int:
    from otel_tokens.cli import budgets

    if args.action == "check":
        if not args.file:
            print("otel-tokens: budgets check needs a FILE", file=sys.stderr)
            return EXIT_USAGE
        return budgets.check(args.file)
    return budgets.status(args.file, args.json)


def cmd_run(argv: Sequence[str]) -> int:
    try:
        from otel_tokens.cli import run as run_module
    except ImportError as exc:
        if exc.name != f"{__package__}.run":
            raise
        raise StoreError("`otel-tokens run` is not available in this build") from None
    return int(run_module.main(list(argv)))


def cmd_stack(args: argparse.Namespace) -> int:
    from otel_tokens.stack.generate import StackError, generate

    out = Path(args.out).expanduser()
    try:
        written = generate(out, Path(args.budgets).expanduser() if args.budgets else None)
    except StackError as exc:
        print(f"otel-tokens: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(path.relative_to(out) if path.is_relative_to(out) else path)
    return 0


# --- parser -----------------------------------------------------------------------------

_STORE_HELP = f"store file (default: ${n.ENV_STORE} or {default_store_path()})"

_MAIN_EPILOG = """\
examples:
  otel-tokens demo                        simulate a day of AI-assisted work into the store
  otel-tokens report                      spend by task, outliers flagged against peers
  otel-tokens report --by model --since 7d
  otel-tokens top --since 24h             the most expensive runs, with ids to trace
  otel-tokens trace 3f9c2e1a-...          the tree of one run: agents, calls, retries
  otel-tokens run --task nightly-triage -- python triage.py
  otel-tokens prune --older-than 30d
  otel-tokens prices check prices.yaml
  otel-tokens budgets status
  otel-tokens stack generate --budgets budgets.yaml --out ./stack
"""

_REPORT_EPILOG = """\
examples:
  otel-tokens report                          by task name, outliers flagged
  otel-tokens report --by model --since 24h
  otel-tokens report --by pipeline --since 2026-11-01
  otel-tokens report --task fix-flaky-test --json | jq '.[0].cost_usd'
  otel-tokens report --by team --csv > spend.csv

Cost per successful task is the mean cost of tasks whose outcome is success; failed
tasks shows the money spent on the others. Loop depth is LLM calls per task. A run is
an outlier when it costs more than 3x the median of runs of the same task name and size.
--by user and --by team are sorted by name, not cost: this is not a ranking of people.
JSON and CSV numbers are exact decimals (parse with Decimal to keep every digit).
"""

_TOP_EPILOG = """\
examples:
  otel-tokens top
  otel-tokens top --since 24h --limit 5
  otel-tokens top --json | jq -r '.[0].id' | xargs otel-tokens trace
"""

_TRACE_EPILOG = """\
examples:
  otel-tokens trace 3f9c2e1a-6b7d-4c8e-9f00-112233445566     a task id (from `top` or `report`)
  otel-tokens trace 4bf92f3577b34da6a3ce929d0e0e4736         a trace id (32 hex digits)
"""

_DEMO_EPILOG = """\
examples:
  otel-tokens demo                         into the local store, then: otel-tokens report
  otel-tokens demo --store /tmp/demo.db    a throw-away store
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 otel-tokens demo     into the collector stack

Six people in three teams run S/M/L tasks through the real openai and anthropic SDKs
against a fake LLM server on 127.0.0.1 (no network, no API keys): agents that loop, one
runaway loop, SDK retries on 429s, a stream cut mid-way, a CI job whose agents run in
subprocesses, and a model with no known price. Takes well under a minute.
"""

_PRICES_EPILOG = """\
examples:
  otel-tokens prices check prices.yaml     before pointing OTEL_TOKENS_PRICES at it

Every problem is printed as FILE:LINE: what is wrong (fix: how), and the exit code is 2.
At run time a bad entry is skipped (reported once) and the rest of the prices still apply.
"""

_BUDGETS_EPILOG = """\
examples:
  otel-tokens budgets check budgets.yaml     before pointing OTEL_TOKENS_BUDGETS at it
  otel-tokens budgets status                 spent, limit, reserved and projection per budget
  otel-tokens budgets status --json

check prints every problem as FILE:LINE: what is wrong (fix: how) and exits 2. status reads
the ledger OTEL_TOKENS_LEDGER names (default: the local SQLite ledger beside the store).
"""

_PRUNE_EPILOG = """\
examples:
  otel-tokens prune --older-than 30d
  otel-tokens prune --older-than 12w --dry-run
  otel-tokens prune --older-than 7d --vacuum          also give the disk space back

The cut-off is rounded down to the hour so hourly rollups stay exact.
"""


_STACK_EPILOG = """\
examples:
  otel-tokens stack generate --budgets budgets.yaml --out ./stack

Writes dashboards/*.json, deploy/prometheus/{rules,tests}/ and
deploy/grafana/provisioning/alerting/ under DIR. Needs: pip install 'otel-tokens[stack]'.
"""


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="otel-tokens", description="See what your AI calls cost, and why.",
                     epilog=_MAIN_EPILOG, formatter_class=fmt)  # fmt: skip
    parser.add_argument("--version", action="version", version=f"otel-tokens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_: str, epilog: str, func: Callable[[argparse.Namespace], int],
                description: str | None = None, store: bool = True) -> _Parser:  # fmt: skip
        p: _Parser = sub.add_parser(name, help=help_, description=description or help_, epilog=epilog,
                                    formatter_class=fmt)  # fmt: skip
        p.set_defaults(func=func)
        if store:
            p.add_argument("--store", metavar="PATH", help=_STORE_HELP)
        return p

    report = command("report", "Spend, tokens, retries and loop depth by task (or user, model...).",
                     _REPORT_EPILOG, cmd_report)  # fmt: skip
    report.add_argument("--by", choices=("task", "user", "team", "model", "provider", "pipeline", "agent"),
                        default="task", help="what to group by (default: task)")  # fmt: skip
    report.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="24h, 7d, 2w or a date like 2026-11-01 (default: all)",
    )
    report.add_argument("--task", metavar="NAME", help="only calls of this task name")
    out = report.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="an array of rows with exact numbers")
    out.add_argument("--csv", action="store_true", help="CSV with a header row, exact numbers")

    top = command(
        "top", "The most expensive runs, each with the id to pass to `trace`.", _TOP_EPILOG, cmd_top
    )
    top.add_argument("--since", type=parse_since, metavar="WHEN", help="24h, 7d, 2w or a date (default: all)")
    top.add_argument("--limit", type=_positive, default=10, metavar="N", help="how many runs (default: 10)")
    top.add_argument("--json", action="store_true", help="an array of rows with exact numbers")

    trace = command(
        "trace", "The tree of one run with cost, tokens and time per node.", _TRACE_EPILOG, cmd_trace
    )
    trace.add_argument("id", metavar="TASK_ID|TRACE_ID", help="a task id or a 32-hex-digit trace id")

    prune = command("prune", "Delete recorded telemetry older than a given age.", _PRUNE_EPILOG, cmd_prune)
    prune.add_argument(
        "--older-than", type=parse_duration, required=True, metavar="AGE", help="e.g. 30d, 12w"
    )
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    prune.add_argument("--vacuum", action="store_true", help="compact the file afterwards")

    demo = command("demo", "Simulate a day of AI-assisted engineering into the store (or OTLP).",
                   _DEMO_EPILOG, cmd_demo)  # fmt: skip
    demo.add_argument(
        "--tasks", type=_positive, default=40, metavar="N", help="tasks in the day (default: 40)"
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")

    prices = command("prices", "Check a price file (OTEL_TOKENS_PRICES) before using it.",
                     _PRICES_EPILOG, cmd_prices, store=False)  # fmt: skip
    prices.add_argument("action", choices=("check",), help="what to do (check)")
    prices.add_argument("file", metavar="FILE", help="a YAML or JSON price file")

    budgets = command("budgets", "Check a budget file; show where each budget stands.", _BUDGETS_EPILOG,
                      cmd_budgets, "Check a budget file (OTEL_TOKENS_BUDGETS); show where each budget "
                      "stands in the ledger.", store=False)  # fmt: skip
    budgets.add_argument("action", choices=("check", "status"), help="what to do")
    budgets.add_argument(
        "file", metavar="FILE", nargs="?", help=f"a budget file (status: default ${n.ENV_BUDGETS})"
    )
    budgets.add_argument("--json", action="store_true", help="status as a JSON array")

    stack = command("stack", "Generate the team stack's rules, alerts and dashboards.", _STACK_EPILOG,
                    cmd_stack, "Generate Prometheus rules (with promtool tests), Grafana alerting and "
                    "dashboards for your budget file.", store=False)  # fmt: skip
    stack.add_argument("action", choices=("generate",), help="what to do (generate)")
    stack.add_argument("--budgets", metavar="FILE",
                       help=f"budget file (default: ${n.ENV_BUDGET_FILE} or the example)")  # fmt: skip
    stack.add_argument("--out", metavar="DIR", default=".", help="where to write (default: .)")

    sub.add_parser("run", help="Run a command as a task: otel-tokens run --task NAME -- COMMAND...",
                   add_help=False)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list[:1] == ["run"]:
            return cmd_run(args_list[1:])
        parser = build_parser()
        args = parser.parse_args(args_list)
        return int(args.func(args))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except StoreError as exc:
        print(f"otel-tokens: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:
        print(f"otel-tokens: the store cannot be read: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `otel-tokens report | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
