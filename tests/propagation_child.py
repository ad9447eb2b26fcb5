"""A child process for the propagation tests: ``python propagation_child.py LEVEL MODE``.

Joins the parent's trace and task from the environment carriers (as the start-up hook
does), prints what it sees as one JSON line, records one synthetic LLM call costing
LEVEL/1000 USD, and (below level 2) starts the next level inside an agent scope, through
``subprocess`` (MODE ``popen``) or by replacing itself with ``os.execv`` (MODE ``exec``).
Also the target of the multiprocessing test (`mp_target`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from decimal import Decimal

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_tokens import names as n
from otel_tokens.attribution import context, propagation
from otel_tokens.attribution import scopes as attribution
from otel_tokens.record import CallRecord, Usage

# What instrument() does at start-up; here only in a process of ours, not in the test process
# that imports this module (`_inheriting`: a spawn/forkserver child unpickling its target).
if __name__ == "__main__" or getattr(multiprocessing.current_process(), "_inheriting", False):
    propagation.install()


def seen(level: int) -> dict[str, object]:
    sc = trace.get_current_span().get_span_context()
    attrs = context.current_scope().span_attributes
    return {
        "level": level,
        "trace_id": format(sc.trace_id, "032x"),
        "parent_span_id": format(sc.span_id, "016x"),
        "task_name": attrs.get(n.TASK_NAME),
        "task_id": attrs.get(n.TASK_ID),
        "user": attrs.get(n.USER_ID),
    }


def record_call(level: int) -> None:
    usage = Usage(input_tokens=100 * level, output_tokens=10 * level)
    record = CallRecord("openai", "chat", "gpt-4o", usage=usage, usage_reported=True)
    context.current_scope().add_call(record, Decimal(level) / 1000)


def main(level: int, mode: str) -> None:
    trace.set_tracer_provider(TracerProvider())  # real (unexported) spans, so scopes get span ids
    propagation.attach_from_environ()  # what the start-up hook does
    print(json.dumps(seen(level)), flush=True)
    record_call(level)
    if level >= 2:
        return
    with attribution.agent(f"level-{level}"):
        argv = [sys.executable, os.path.abspath(__file__), str(level + 1), mode]
        if mode == "exec":
            os.execv(sys.executable, argv)
        subprocess.run(argv, check=True)


def mp_target(out_path: str) -> None:
    with open(out_path, "w") as f:
        json.dump(seen(1), f)
    record_call(3)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
