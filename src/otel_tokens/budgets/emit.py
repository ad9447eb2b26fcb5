"""Budget emission: a crossing becomes a WARNING line, a span event and a counter point; the
utilisation of every budget is an observable gauge; ledger trouble is one loud line and a
counter. Metric attributes are the budget name (and the threshold): never a scope value.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_tokens import names as n
from otel_tokens.budgets.policy import Applicable, Budget, from_nano

logger = logging.getLogger("otel_tokens")


def _usd(nano: int) -> str:
    return f"${float(from_nano(nano)):.6g}"


def _ends(a: Applicable) -> str:
    return a.end.isoformat(timespec="minutes") if a.end is not None else "the end of the task run"


class _Instruments:
    """One set per meter (the SDK keeps the first observable gauge registered under a name)."""

    def __init__(self, meter: Meter) -> None:
        self.emitter: Emitter | None = None
        self.crossings = meter.create_counter(
            n.M_BUDGET_CROSSINGS, unit="{crossing}", description="Budget thresholds crossed, once per period"
        )
        self.ledger_errors = meter.create_counter(
            n.M_BUDGET_LEDGER_ERRORS, unit="{error}", description="Budget checks the ledger could not answer"
        )
        meter.create_observable_gauge(
            n.M_BUDGET_UTILIZATION,
            callbacks=[self._observe],
            unit="1",
            description="Budget spent / limit in the current period (per-scope budgets: the highest scope)",
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        emitter = self.emitter
        return emitter.observations() if emitter is not None else ()


_bundles: weakref.WeakKeyDictionary[Meter, _Instruments] = weakref.WeakKeyDictionary()


class Emitter:
    def __init__(self, meter: Meter, budgets: Iterable[Budget]) -> None:
        self._lock = threading.Lock()
        self._util: dict[str, tuple[str, float, float]] = {}  # name -> (period, end epoch, value)
        self._names = tuple(b.name for b in budgets)
        self._ledger_said: set[str] = set()
        bundle = _bundles.get(meter)
        if bundle is None:
            bundle = _bundles[meter] = _Instruments(meter)
        bundle.emitter = self
        self.crossings = bundle.crossings
        self.ledger_errors = bundle.ledger_errors

    def utilisation(self, a: Applicable, spent: int) -> None:
        value = spent / a.budget.limit_nano
        end = a.end.timestamp() if a.end is not None else float("inf")
        with self._lock:
            old = self._util.get(a.budget.name)
            if a.budget.period == "task" or old is None or old[0] != a.period or value > old[2]:
                self._util[a.budget.name] = (a.period, end, value)

    def observations(self) -> list[Observation]:
        now = time.time()
        with self._lock:
            values = dict(self._util)
        out = []
        for name in self._names:
            got = values.get(name)
            value = got[2] if got is not None and got[1] > now else 0.0
            out.append(Observation(value, {n.BUDGET_NAME: name}))
        return out

    def crossing(self, a: Applicable, index: int, spent: int, span: Any) -> None:
        budget = a.budget
        threshold = budget.warn_at[index]
        logger.warning(
            "otel-tokens: budget %r (%s) crossed %s%% of its limit: %s of %s spent this %s;"
            " the period ends %s",
            budget.name,
            a.scope,
            f"{float(threshold * 100):g}",
            _usd(spent),
            _usd(budget.limit_nano),
            budget.period,
            _ends(a),
        )
        attrs: dict[str, Any] = {
            n.BUDGET_NAME: budget.name,
            n.BUDGET_SCOPE: a.scope,
            n.BUDGET_THRESHOLD: float(threshold),
            n.BUDGET_SPENT: float(from_nano(spent)),
            n.BUDGET_LIMIT: float(budget.limit_usd),
        }
        if a.end is not None:
            attrs[n.BUDGET_RESETS_AT] = a.end.isoformat()
        if span is not None:
            span.add_event(n.EVENT_BUDGET_THRESHOLD, attrs)
        self.crossings.add(1, {n.BUDGET_NAME: budget.name, n.BUDGET_THRESHOLD: str(threshold)})

    def ledger_error(self, budgets: Iterable[Budget], url: str, exc: BaseException, allowed: bool) -> None:
        names = sorted({b.name for b in budgets})
        for name in names:
            self.ledger_errors.add(1, {n.BUDGET_NAME: name})
        key = f"{url}:{type(exc).__name__}:{allowed}"
        if key in self._ledger_said:
            return
        self._ledger_said.add(key)
        what = (
            "calls go ahead unchecked (on_ledger_error: allow)"
            if allowed
            else "calls under budgets with on_ledger_error: block are refused"
        )
        logger.error(
            "otel-tokens: the budget ledger %s is unreachable (%s): %s for %s; counted in %s",
            url,
            exc,
            what,
            ", ".join(names),
            n.M_BUDGET_LEDGER_ERRORS,
        )
