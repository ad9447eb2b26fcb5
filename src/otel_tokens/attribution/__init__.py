"""Who and what spent it: scopes (task, agent), attribution context, CI detection, the
cardinality bound on attribute values, and propagation across threads and processes.

`scopes` has the public `task()` and `agent()`; `propagation` is the propagator role (it
patches threads, executors, pools, `subprocess`, `os.exec*` and `multiprocessing` only when
`install()` is called): `carriers` says what crosses a process boundary (never W3C
baggage), `workers` hands the scope to threads and work items, `processes` to children.
May import the base modules (`names`, `record`, `guard`, `firstuse`) only.
"""
