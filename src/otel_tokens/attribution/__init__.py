"""Who and what spent it: scopes (task, agent), attribution context, CI detection, the
cardinality bound on attribute values, and propagation across threads and processes.

`scopes` has the public `task()` and `agent()`; `propagation` is the propagator role (it
patches `threading`, executors and `subprocess` only when `install()` is called). May import
the base modules (`names`, `record`, `guard`) only.
"""
