"""A small app for the fault campaign, run as a subprocess with ``OTEL_TOKENS_ENABLED=true``.

    python -m tests.faults.app CALLS [--stream-every K] [--anthropic-every A] [--requests FILE]

It starts the fake LLM server in-process and makes CALLS calls inside one task (openai chat,
every K-th streamed; every A-th an anthropic message), each with known usage: call i has
``input_tokens(i)`` and ``output_tokens(i)``. It prints one JSON line: the answers, each call's
latency, and the peak RSS. ``--requests`` writes every request the server received (headers
included) to FILE, for the secrets scan.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import openai

import otel_tokens
from otel_tokens.fakellm import FakeLLM, Reply

API_KEY = "sk-fault-app-SECRET-1b6e0d8c"
ANTHROPIC_KEY = "sk-ant-fault-app-SECRET-77aa"
USER = "alice.fault@example.com"
PROMPT = "PROMPT-TEXT-never-exported-5c2e"
ANSWER = "COMPLETION-TEXT-never-exported-9d41"
TASK = "fault-app"
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"


def input_tokens(i: int) -> int:
    return 100 + i % 50


def output_tokens(i: int) -> int:
    return 10 + i % 7


def is_anthropic(i: int, every: int = 3) -> bool:
    return every > 0 and i % every == every - 1


def _peak_rss_kib() -> int:
    """This image's peak RSS (VmHWM). Not ru_maxrss: Linux keeps that across exec, so a child of
    a big pytest process would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("calls", type=int)
    parser.add_argument("--stream-every", type=int, default=2)
    parser.add_argument("--requests")
    parser.add_argument("--pace", type=float, default=0.0)
    parser.add_argument("--hold", help="after the calls, wait until this file exists, then exit")
    parser.add_argument("--anthropic-every", type=int, default=3, help="0: openai only (faster start)")
    args = parser.parse_args(argv)
    answers: list[str] = []
    latencies: list[float] = []
    with FakeLLM() as fake:
        oc = openai.OpenAI(base_url=fake.openai_base_url, api_key=API_KEY, max_retries=0)
        if args.anthropic_every:
            import anthropic

            ac = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0)
        messages: Any = [{"role": "user", "content": PROMPT}]
        with otel_tokens.task(TASK, size="S", user=USER, team="faults"):
            for i in range(args.calls):
                fake.enqueue(Reply.ok(input_tokens(i), output_tokens(i), text=ANSWER, chunks=3))
                stream = args.stream_every > 0 and i % args.stream_every == 0
                start = time.perf_counter()
                if is_anthropic(i, args.anthropic_every):
                    if stream:
                        with ac.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=messages) as s:
                            text = "".join(s.text_stream)
                    else:
                        m = ac.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=messages)
                        text = "".join(b.text for b in m.content if b.type == "text")
                elif stream:
                    chunks = oc.chat.completions.create(
                        model=OPENAI_MODEL,
                        messages=messages,
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                    with chunks:
                        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                else:
                    r = oc.chat.completions.create(model=OPENAI_MODEL, messages=messages)
                    text = r.choices[0].message.content or ""
                latencies.append(time.perf_counter() - start)
                answers.append(text)
                if args.pace:
                    time.sleep(args.pace)
        if args.requests:
            with open(args.requests, "w", encoding="utf-8") as f:
                for request in fake.requests:
                    f.write(json.dumps({"headers": request.headers, "body": request.body.decode()}) + "\n")
    if args.hold:
        import os

        while not os.path.exists(args.hold):
            time.sleep(0.05)
    rss_kib = _peak_rss_kib()
    print(json.dumps({"answers": answers, "latencies": latencies, "max_rss_kib": rss_kib}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
