"""`otel-tokens demo`: a simulated day of AI-assisted engineering, through the real SDKs.

Six people in three teams run tasks of sizes S/M/L against the built-in fake LLM server
(`otel_tokens.fakellm`, loopback only) with the real `openai` and `anthropic` clients,
instrumented as any app would be. The day contains agents that loop, one runaway loop,
SDK retries on 429s, a stream cut mid-way, a CI job whose agents run in subprocesses,
and a model with no known price. Telemetry goes where the environment says: the local
store (default) or OTLP when an endpoint is configured (then the store only if
``OTEL_TOKENS_STORE`` is set too). Subprocess entry points (``worker``, ``ci-job``) are
run as ``python -m otel_tokens.cli.demo ...`` by the demo itself.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otel_tokens import names as n

OPENAI_MODELS = ("gpt-4.1", "gpt-4.1-mini", "o3-mini")
UNPRICED_MODEL = "acme-coder-7b"  # a self-hosted model behind an OpenAI-compatible API
PEOPLE = (("alice", "payments"), ("bob", "payments"), ("chen", "platform"), ("dana", "platform"),
          ("eve", "search"), ("farid", "search"))  # fmt: skip
# task name -> (sizes, provider, model, coder iterations per size)
CATALOG: dict[str, tuple[str, str, str, dict[str, tuple[int, int]]]] = {
    "fix-flaky-test": ("SM", "openai", "gpt-4.1", {"S": (2, 5), "M": (5, 10)}),
    "review-pr": ("SM", "anthropic", "claude-haiku-4-5", {"S": (1, 3), "M": (3, 6)}),
    "write-migration": ("L", "anthropic", "claude-opus-4-5", {"L": (12, 22)}),
    "triage-incident": ("M", "openai", "o3-mini", {"M": (4, 9)}),
    "summarize-logs": ("S", "openai", "gpt-4.1-mini", {"S": (1, 2)}),
    "generate-tests": ("M", "openai", UNPRICED_MODEL, {"M": (4, 8)}),
}
CI_ENV = {
    "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW": "nightly-triage", "GITHUB_JOB": "agents",
    "GITHUB_RUN_ID": "9043117", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_REF_NAME": "main",
}  # fmt: skip
CI_WORKERS = (("triager", 4), ("fixer", 6))


class GaveUp(Exception):
    """An agent that stops trying: the task ends as a failure."""


@dataclass(frozen=True)
class Planned:
    name: str
    size: str
    user: str
    team: str
    iterations: int
    kind: str = "normal"  # normal | runaway | rate-limited | cut-stream | fails
    task_id: str | None = None

    @property
    def calls(self) -> int:
        return self.iterations + 2 + (self.iterations // 4 if self.name == "summarize-logs" else 0)


def plan_day(rng: random.Random, tasks: int) -> list[Planned]:
    """The day's tasks in order; the special cases are placed at fixed spots."""
    day: list[Planned] = []
    for i in range(tasks):
        name = list(CATALOG)[i % len(CATALOG)] if i < 2 * len(CATALOG) else rng.choice(list(CATALOG))
        sizes, _, _, iterations = CATALOG[name]
        size = rng.choice(sizes)
        low, high = iterations[size]
        user, team = rng.choice(PEOPLE)
        day.append(
            Planned(
                name, size, user, team, rng.randint(low, high), "fails" if rng.random() < 0.07 else "normal"
            )
        )
    peers = [Planned("fix-flaky-test", "M", *PEOPLE[i], rng.randint(5, 10)) for i in range(4)]
    day = peers[:2] + day + peers[2:]  # enough same-size peers for the runaway to stand out
    specials = [
        Planned("fix-flaky-test", "M", "dana", "platform", 40, "runaway", str(uuid.uuid4())),
        Planned("review-pr", "M", "eve", "search", 4, "rate-limited"),
        Planned("triage-incident", "M", "chen", "platform", 5, "cut-stream"),
    ]
    for offset, special in zip((len(day) // 3, len(day) // 2, 2 * len(day) // 3), specials, strict=True):
        day.insert(offset, special)
    return day


class Caller:
    """Makes one LLM call with the real SDKs; the fake server's reply is set per request."""

    def __init__(self, base_url: str, rng: random.Random, fake: Any = None) -> None:
        import anthropic
        import openai

        from otel_tokens.fakellm import Reply

        self.reply = Reply
        self.rng = rng
        self.openai: Any = openai.OpenAI(base_url=base_url + "/v1", api_key="sk-demo", max_retries=3)
        self.anthropic: Any = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-demo", max_retries=3)
        self.fake = fake  # the in-process server, to script retries (the parent process only)

    def _header(self, reply: Any) -> dict[str, str]:
        from otel_tokens.fakellm import REPLY_HEADER

        return {REPLY_HEADER: json.dumps(reply.to_spec())}

    def usage(self, context: int, cached: bool, reasoning: bool = False) -> Any:
        output = self.rng.randint(120, 900)
        return self.reply.ok(
            input_tokens=context, output_tokens=output, cache_read=int(context * 0.8) if cached else 0,
            reasoning=int(output * self.rng.uniform(0.3, 0.6)) if reasoning else 0, latency=0.004,
        )  # fmt: skip

    def chat(self, provider: str, model: str, prompt: str, reply: Any, *, retry_429: int = 0,
             stream: bool = False) -> None:  # fmt: skip
        headers = self._header(reply)
        if retry_429 and self.fake is not None:  # through the queue: a header would answer every retry
            self.fake.enqueue(*[self.reply.error(429, retry_after=0.02)] * retry_429, reply)
            headers = {}
        messages = [{"role": "user", "content": prompt}]
        if provider == "anthropic":
            self.anthropic.messages.create(model=model, max_tokens=1024, messages=messages,
                                           extra_headers=headers)  # fmt: skip
        elif stream:
            for _ in self.openai.chat.completions.create(model=model, messages=messages, stream=True,
                                                         stream_options={"include_usage": True},
                                                         extra_headers=headers):  # fmt: skip
                pass
        else:
            self.openai.chat.completions.create(model=model, messages=messages, extra_headers=headers)

    def embed(self, tokens: int) -> None:
        reply = self.reply.ok(input_tokens=tokens, output_tokens=0, latency=0.002)
        self.openai.embeddings.create(model="text-embedding-3-small", input=["log chunk"],
                                      extra_headers=self._header(reply))  # fmt: skip


@contextmanager
def tool(name: str) -> Iterator[None]:
    from opentelemetry import trace

    with trace.get_tracer(n.SCOPE).start_as_current_span(name):
        time.sleep(0.002)
        yield


def run_task(caller: Caller, job: Planned, tick: Callable[[int], None]) -> None:
    import otel_tokens

    _, provider, model, _ = CATALOG[job.name]
    rng = caller.rng
    context = rng.randint(1500, 4000)
    with otel_tokens.task(job.name, id=job.task_id, size=job.size, user=job.user, team=job.team):
        with otel_tokens.agent("planner"):
            caller.chat(provider, model, f"plan {job.name}", caller.usage(context, cached=False))
            tick(1)
        with otel_tokens.agent("coder"):
            for i in range(job.iterations):
                if job.kind == "runaway":  # the same request over and over: a stuck loop
                    caller.chat(
                        provider, model, "the test still fails, try again", caller.usage(9000, cached=True)
                    )
                elif job.kind == "cut-stream" and i == 2:
                    cut = caller.reply.ok(input_tokens=context, output_tokens=600, cut_after=3, chunks=8)
                    try:
                        caller.chat(provider, model, "stream the fix", cut, stream=True)
                    except Exception:
                        tick(job.iterations - i + 1)
                        raise GaveUp("stream cut mid-way") from None
                else:
                    usage = caller.usage(context, cached=i > 0, reasoning=model == "o3-mini")
                    retries = 2 if job.kind == "rate-limited" else 0
                    caller.chat(provider, model, f"step {i} of {job.name}", usage, retry_429=retries)
                context += rng.randint(400, 1500)
                if job.name == "summarize-logs" and i % 4 == 0:
                    caller.embed(rng.randint(800, 3000))
                    tick(1)
                if i % 3 == 2:
                    with tool("run_tests"):
                        pass
                tick(1)
        if job.kind == "fails":
            tick(1)
            raise GaveUp("reviewer rejected the change")
        with otel_tokens.agent("reviewer"):
            caller.chat(provider, model, "review", caller.usage(context, cached=True))
            tick(1)


def _subprocess_env(store: Path | None) -> dict[str, str]:
    from otel_tokens.attribution.propagation import child_environ

    env = child_environ() or dict(os.environ)
    env[n.ENV_ENABLED] = "true"
    if store is not None:
        env[n.ENV_STORE] = str(store)
    return env


def run_ci_job(base_url: str, store: Path | None, seed: int) -> int:
    """The CI job as a subprocess: a task whose agents are further subprocesses."""
    env = {**_subprocess_env(store), **CI_ENV, n.ENV_USER: "ci-bot", n.ENV_TEAM: "platform"}
    cmd = [sys.executable, "-m", "otel_tokens.cli.demo", "ci-job", base_url, str(seed)]
    return subprocess.run(cmd, env=env, check=False).returncode


def ci_job_main(base_url: str, seed: int) -> int:
    import otel_tokens

    _start_child_telemetry()
    store = os.environ.get(n.ENV_STORE)
    with otel_tokens.task("nightly-triage", size="M"):
        env = _subprocess_env(Path(store) if store else None)
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "otel_tokens.cli.demo",
                    "worker",
                    base_url,
                    role,
                    str(calls),
                    str(seed + i),
                ],
                env=env,
            )
            for i, (role, calls) in enumerate(CI_WORKERS)
        ]
        return max(worker.wait() for worker in workers)


def worker_main(base_url: str, role: str, calls: int, seed: int) -> int:
    import otel_tokens

    _start_child_telemetry()
    caller = Caller(base_url, random.Random(seed))
    context = 3000
    with otel_tokens.agent(role):
        for i in range(calls):
            caller.chat("openai", "gpt-4.1-mini", f"{role} step {i}", caller.usage(context, cached=i > 0))
            context += 700
    return 0


def _start_child_telemetry() -> None:
    """The .pth hook has normally done this already (OTEL_TOKENS_ENABLED is set)."""
    if "otel_tokens._autostart" not in sys.modules:
        from otel_tokens.distro.bootstrap import start

        start()


def _flush_and_close() -> None:
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            flush()


def run_demo(store: Path | None, tasks: int = 40, seed: int = 7) -> int:
    """The whole demo in this process; returns the exit status for `otel-tokens demo`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import otel_tokens
    from otel_tokens.distro.bootstrap import configure_providers, otlp_configured
    from otel_tokens.fakellm import FakeLLM
    from otel_tokens.store.paths import default_store_path

    otlp = otlp_configured()
    default = default_store_path()
    if store is not None or not otlp:  # with OTLP, a local copy only when asked for
        store = store or (
            Path(os.environ[n.ENV_STORE]) if os.environ.get(n.ENV_STORE) else default_store_path()
        )
        os.environ[n.ENV_STORE] = str(store)
    configure_providers()
    otel_tokens.instrument()
    rng = random.Random(seed)
    day = plan_day(rng, tasks)
    ci_calls = sum(calls for _, calls in CI_WORKERS)
    console = Console(stderr=True)
    started = time.monotonic()
    failed_ci = 0
    with FakeLLM(latency=0.003) as fake, Progress(
        TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task("starting the day", total=sum(job.calls for job in day) + ci_calls)
        caller = Caller(fake.base_url, rng, fake)

        def tick(count: int) -> None:
            progress.advance(bar, count)

        for i, job in enumerate(day):
            progress.update(bar, description=f"{job.user} ({job.team}): {job.name} [{job.size}]")
            try:
                run_task(caller, job, tick)
            except GaveUp:
                pass
            if i == 3 * len(day) // 4:
                progress.update(bar, description="CI: nightly-triage, agents in subprocesses")
                failed_ci = run_ci_job(fake.base_url, store, seed)
                tick(ci_calls)
        calls = len(fake.requests)
    _flush_and_close()
    runaway = next(job.task_id for job in day if job.kind == "runaway")
    elapsed = time.monotonic() - started
    where = f"the local store {store}" if store else "OTLP"
    if store and otlp:
        where = f"OTLP and the local store {store}"
    print(
        f"Simulated a day of AI-assisted engineering: {len(day) + 1} tasks by {len(PEOPLE)} people in "
        f"3 teams,\n{calls} requests to the fake LLM server in {elapsed:.1f} s. Telemetry went to {where}."
    )
    if failed_ci:
        print(f"(the CI job exited with status {failed_ci})")
    if store is None:
        print("\nOpen Grafana (docker compose up: http://localhost:3000) to see the day.")
        return 0
    flag = "" if store == default else f" --store {store}"
    print("\nNext:")
    print(f"  otel-tokens report{flag}            spend by task; the runaway agent loop is flagged")
    print(f"  otel-tokens top --limit 5{flag}     the most expensive runs, with ids to trace")
    print(f"  otel-tokens trace {runaway}{flag}")
    print("                                        the runaway loop, call by call")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["worker"]:
        return worker_main(argv[1], argv[2], int(argv[3]), int(argv[4]))
    if argv[:1] == ["ci-job"]:
        return ci_job_main(argv[1], int(argv[2]))
    raise SystemExit("usage: python -m otel_tokens.cli.demo worker|ci-job ...")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
