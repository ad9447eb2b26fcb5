"""Generators for the team stack: Prometheus rules and Grafana alerting (rules, promnames), dashboards."""
