"""An app for the process tests: ``python -m tests.attribution.processes_app MODE``, run with
OTEL_TOKENS_ENABLED=true and an OTLP endpoint (we configure at the first task). Real openai
calls to the fake server (FAKE_OPENAI) from pool workers, executors, a multiprocessing child
and across ``os.exec*``; prints one JSON line with what the parent saw."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import openai

import otel_tokens


def work(_: object = None) -> int:
    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test")
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    return os.getpid()


def totals(t: Any) -> dict[str, Any]:
    got = t.totals()
    return {"llm_calls": got.llm_calls, "cost": str(got.cost.normalize())}


def main(mode: str) -> dict[str, Any]:
    method = os.environ.get("START_METHOD", "fork")
    ctx = multiprocessing.get_context(method)
    if mode == "pool":
        with otel_tokens.task("fanout") as t:
            with ctx.Pool(2) as pool:  # leaving the block calls terminate()
                pids = pool.map(work, range(6))
        return {"fanout": totals(t), "workers": len(set(pids))}
    if mode == "executor":
        out: dict[str, Any] = {}
        with ProcessPoolExecutor(1, mp_context=ctx) as executor:
            for name in ("A", "B"):
                with otel_tokens.task(name) as t:
                    executor.submit(work).result()
                out[name] = totals(t)
        return out
    if mode == "child":
        with otel_tokens.task("child") as t:
            p = ctx.Process(target=work)
            p.start()
            p.join()
        return {"child": totals(t)}
    if mode == "fork":  # a preforking server: the parent has served a call, then forks a worker
        work()
        pid = os.fork()
        if pid == 0:
            work()
            from otel_tokens.attribution.propagation import flush

            flush()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return {"child_status": status}
    if mode == "exec":
        with otel_tokens.task("replaced"):
            work()
            print(json.dumps({"before_exec": time.time()}), flush=True)
            name = os.path.basename(sys.executable)
            code = "import json, time; print(json.dumps({'after_exec': time.time()}))"
            os.execvp(name, [name, "-S", "-c", code])
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    if sys.argv[1] == "exec":
        import logging

        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("otel_tokens").setLevel(logging.DEBUG)
    print(json.dumps(main(sys.argv[1])), flush=True)
