"""The instrumentation role: patch the LLM SDKs and turn each call into a `CallRecord`.

Owns the SDK adapters (`adapters/`, pure functions over SDK objects), the patching core
(timing, guarding, stream finalisation), the `BaseInstrumentor` classes and the SDKs' retry
hooks. Side effects: patches SDK classes when `instrument()` runs, never sets global
providers. May import `telemetry`, `attribution`, `pricing` and the base modules
(`names`, `record`, `guard`); never `distro`, `cli` or `stack`.
"""
