"""The `otel-tokens` command: report, top, trace, prune, prices, run, demo and stack.

Reads the local store (`store`) and drives the other subpackages; nothing imports it.
"""
