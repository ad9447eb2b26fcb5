"""The team stack, generated: Prometheus recording and alert rules with their promtool
tests, Grafana alerting provisioning and dashboards, for a budget file and thresholds.

`generate.generate()` is what `otel-tokens stack generate` runs. Dashboards need the
optional ``otel-tokens[stack]`` extra (grafana-foundation-sdk). May import the base modules
(`names`) only; nothing at run time imports it.
"""
