"""os.register_at_fork: a forked child (a preforking server's worker) starts its own root
scope from zero and never waits on a lock a thread of its parent held at the fork."""

from __future__ import annotations

import os
import signal
import warnings
from decimal import Decimal

import pytest

from otel_tokens.attribution import context
from otel_tokens.attribution.context import Totals
from tests.attribution_helpers import Providers, add, providers

__all__ = ["providers"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_from_zero_with_fresh_locks(providers: Providers) -> None:
    with providers.task("served") as t:
        add(Decimal("0.001"))
        assert t.scope is not None and not context.root_scope().totals().is_empty()
        scope = t.scope
        scope._lock.acquire()  # another thread is rolling a call up at the moment of the fork
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # multi-threaded fork, 3.12+
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child: never returns into pytest
                code = 4
                try:
                    signal.signal(signal.SIGALRM, lambda *_: os._exit(5))  # a deadlock ends it
                    signal.alarm(5)
                    fresh = context.root_scope().totals().is_empty()
                    scope.add_totals(Totals(llm_calls=1))
                    code = 0 if fresh else 3
                finally:
                    os._exit(code)
        finally:
            scope._lock.release()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
