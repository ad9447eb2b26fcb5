"""The distro role: configure OpenTelemetry providers from the environment when nobody else
has, join the parent process's trace and task, and instrument at start-up (the `.pth` hook
and `opentelemetry-instrument` entry points). The only subpackage that may set globals. May
import everything below it (`instrumentation`, `telemetry`, `attribution`, `pricing`, `store`).
"""
