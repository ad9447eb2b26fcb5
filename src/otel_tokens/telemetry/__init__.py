"""Emission: a `CallRecord` becomes span attributes, events and metric points.

Owns the recorder, the instruments, the in-process sum table and the per-call state that
the patching core and the recorder share. Side effects: none beyond the tracer and meter it
is given. May import `attribution`, `pricing` and the base modules; never `instrumentation`,
`distro`, `cli` or `stack`.
"""
