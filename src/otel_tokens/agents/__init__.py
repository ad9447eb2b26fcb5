"""Coding-agent CLIs (Claude Code, OpenAI Codex, Gemini CLI) as sources of LLM calls.

Owns: recognising an agent command and configuring its own telemetry for one run
(`launch`), decoding OTLP/HTTP log payloads (`otlp`), turning each agent's per-call log
record into a provider-neutral `CallRecord` (`normalise`), and the loopback OTLP receiver
that records those calls as LLM calls of the current task (`receiver`).

May import the base modules, `attribution`, `pricing` and `telemetry`. Side effects: the
receiver listens on 127.0.0.1 only while a run lasts; nothing here touches globals or the
user's agent config files.
"""
