"""Budgets as policy: the budget file, the verdicts, the ledger of what was spent.

`policy` is pure (the file's data model, matching a call to budgets, calendar and task
periods, thresholds, the upper-bound estimate of a call) and `policy_file` parses the file
(``OTEL_TOKENS_BUDGETS``, YAML or JSON) into it; both are read at run time by the
instrumentation and by the stack generator. `ledger` (SQLite by default, Redis with
``OTEL_TOKENS_LEDGER=redis://...``) holds spend and reservations across processes;
`gate` runs the pre-call check and the settlement, `emit` turns crossings into log lines,
span events and metrics. Side effects: the ledger's file or Redis keys, our own log lines,
events on the span it is handed and the instruments of the meter it is handed.
May import the base modules (`names`, `record`, `guard`) only: the pricer is passed in.
"""
