"""The budget gate: the check before a call is sent, and its settlement after.

``Gate.admit`` runs in the instrumentation core after the call's span started and before the
SDK sends anything. It matches the call to budgets (`policy`), and when a hard budget
applies, reserves the call's upper-bound estimate in the ledger for every such budget at
once; a refusal raises `BudgetExceeded` (or `ModelDenied` for a ``models:`` rule). It
returns a `Ticket`, and ``Ticket.settle`` replaces the reservation with the call's real cost
(0 when the call failed before any answer; the estimate when the answer carried no usage),
adds it to every matching budget and emits the thresholds this crossed.

Ledger trouble never breaks a call silently: per budget ``on_ledger_error: allow`` lets the
call go (one loud line, a counter), ``block`` refuses it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from opentelemetry.metrics import Meter

from otel_tokens import names as n
from otel_tokens.budgets.emit import Emitter
from otel_tokens.budgets.errors import BudgetExceeded, ModelDenied
from otel_tokens.budgets.ledger import (
    KEEP_S,
    Charge,
    Hold,
    Ledger,
    LedgerError,
    dead_local_holder,
    reservation_id,
    reservation_ttl_s,
)
from otel_tokens.budgets.ledgers import open_ledger
from otel_tokens.budgets.policy import (
    Applicable,
    Estimate,
    Policy,
    applicable,
    bits,
    denied_by,
    estimate,
    from_nano,
    subject_of,
    to_nano,
)
from otel_tokens.budgets.policy_file import load_policy
from otel_tokens.record import CallRecord, Usage

logger = logging.getLogger("otel_tokens")


class _Price(Protocol):
    @property
    def total(self) -> Decimal: ...


class PricerLike(Protocol):
    def price(
        self,
        provider: str,
        model: str | None,
        usage: Usage,
        service_tier: str | None = None,
        speed: str | None = None,
    ) -> _Price | None: ...


class Gate:
    def __init__(
        self,
        policy: Policy,
        pricer: Callable[[], PricerLike],
        meter: Meter,
        ledger: Callable[[], Ledger] = open_ledger,
        service: str | None = None,
    ) -> None:
        self.policy = policy
        self._pricer = pricer
        self._open_ledger = ledger
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()
        self.emit = Emitter(meter, policy.budgets)
        self.service = service if service is not None else service_name()
        self._said: set[str] = set()
        self.ttl_s = reservation_ttl_s()

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            with self._lock:
                if self._ledger is None:
                    self._ledger = self._open_ledger()
        return self._ledger

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.warning(message, *args)

    def price_fn(
        self, provider: str, model: str | None, tier: str | None = None, speed: str | None = None
    ) -> Callable[[Usage], Decimal | None]:
        pricer = self._pricer()

        def price(usage: Usage) -> Decimal | None:
            got = pricer.price(provider, model, usage, tier, speed)
            return got.total if got is not None else None

        return price

    # --- before the call ------------------------------------------------------------------
    def admit(self, base: CallRecord, kwargs: Mapping[str, Any], attrs: Mapping[str, Any]) -> Ticket | None:
        subject = subject_of(attrs, base.provider, base.request_model, self.service)
        rule = denied_by(self.policy, subject) if self.policy.models else None
        if rule is not None:
            where = f"{self.policy.source}:{rule.line}"
            if rule.action == "block":
                raise ModelDenied(
                    budget="models",
                    scope=f"model={subject.get('model')}",
                    limit_usd=0.0,
                    spent_usd=None,
                    estimate_usd=0.0,
                    period="task",
                    resets_at=None,
                    reason=f"the models rule at {where} denies {subject.get('model')!r} for this work"
                    f" ({', '.join(f'{k}={v}' for k, v in sorted(subject.items()) if k != 'task_id')});"
                    " use another model or change the rule",
                )
            self._say_once(
                f"model:{rule.line}:{subject.get('model')}",
                "otel-tokens: the models rule at %s denies %r here (action: warn: the call goes ahead)",
                where,
                subject.get("model"),
            )
        applies = applicable(self.policy, subject, datetime.now(UTC))
        if not applies:
            return None
        ticket = Ticket(self, base, kwargs, applies)
        blocking = [a for a in applies if a.budget.blocks]
        if blocking:
            ticket.hold(blocking)
        return ticket

    def charge(self, record: CallRecord, attrs: Mapping[str, Any], span: Any) -> None:
        """Account a call that already happened (a coding agent's, reported after the fact):
        nothing can be refused or held; its real cost is added to every matching budget and
        the thresholds it crossed are emitted, as for a call we ran. A hard budget it exhausts
        refuses the *next* instrumented call."""
        subject = subject_of(attrs, record.provider, record.request_model, self.service)
        applies = applicable(self.policy, subject, datetime.now(UTC))
        if applies:
            Ticket(self, record, {}, applies).settle(record, span)

    def estimate(self, base: CallRecord, kwargs: Mapping[str, Any]) -> Estimate:
        est = estimate(
            kwargs,
            base.operation,
            base.request_model,
            self.policy,
            self.price_fn(base.provider, base.request_model),
        )
        if not est.priced:
            self._say_once(
                f"unpriced:{base.provider}:{base.request_model}",
                "otel-tokens: %s model %r has no price: budgets estimate its calls at $0 and they add $0"
                " (fix: add it to a price file, OTEL_TOKENS_PRICES)",
                base.provider,
                base.request_model,
            )
        return est

    def ledger_failed(self, budgets: Sequence[Applicable], exc: LedgerError, est: Estimate | None) -> None:
        refuse = [a for a in budgets if a.budget.on_ledger_error == "block"]
        self.emit.ledger_error((a.budget for a in budgets), self.ledger.url, exc, allowed=not refuse)
        if refuse:
            a = refuse[0]
            raise BudgetExceeded(
                budget=a.budget.name,
                scope=a.scope,
                limit_usd=float(a.budget.limit_usd),
                spent_usd=None,
                estimate_usd=float(est.usd) if est is not None else 0.0,
                period=a.budget.period,
                resets_at=a.end,
                reason=f"budget {a.budget.name!r} ({a.scope}) cannot be checked: the ledger"
                f" {self.ledger.url} is unreachable ({exc}) and the budget says on_ledger_error: block;"
                " fix the ledger, or set on_ledger_error: allow",
            )


def _keep_until(a: Applicable, now: float) -> float:
    return (a.end.timestamp() if a.end is not None else now) + KEEP_S


class Ticket:
    """One admitted call's budgets; `settle` runs exactly once."""

    __slots__ = ("applies", "base", "est", "gate", "held", "kwargs", "rid")

    def __init__(
        self, gate: Gate, base: CallRecord, kwargs: Mapping[str, Any], applies: list[Applicable]
    ) -> None:
        self.gate = gate
        self.base = base
        self.kwargs = kwargs
        self.applies = applies
        self.rid = reservation_id()
        self.est: Estimate | None = None
        self.held: list[Applicable] = []

    def hold(self, blocking: list[Applicable]) -> None:
        gate = self.gate
        est = self.est = gate.estimate(self.base, self.kwargs)
        now = time.time()
        holds = [Hold(a.key, est.nano, a.budget.limit_nano, _keep_until(a, now)) for a in blocking]
        self.held = blocking  # from here settle drops them (idempotent, also if the ledger failed)
        try:
            ledger = gate.ledger
            refusal = ledger.reserve(self.rid, holds, now + gate.ttl_s, now)
            if refusal is not None and _release_dead(ledger, blocking[refusal.index]):
                refusal = ledger.reserve(self.rid, holds, now + gate.ttl_s, now)
        except LedgerError as exc:
            gate.ledger_failed(blocking, exc, est)
            return
        if refusal is not None:
            a = blocking[refusal.index]
            raise BudgetExceeded(
                budget=a.budget.name,
                scope=a.scope,
                limit_usd=float(a.budget.limit_usd),
                spent_usd=float(from_nano(refusal.spent + refusal.held)),
                estimate_usd=float(est.usd),
                period=a.budget.period,
                resets_at=a.end,
            )

    def cost(self, record: CallRecord) -> int:
        if record.usage_reported:
            gate = self.gate
            price = gate.price_fn(record.provider, record.model, record.service_tier, record.speed)(
                record.usage
            )
            return to_nano(price) if price is not None else 0
        if record.error_type is not None and not record.partial:
            return 0  # failed before any answer: nothing to bill, the reservation is released
        # an answer without usage (e.g. a stream without include_usage): count the upper bound
        est = self.est if self.est is not None else self.gate.estimate(self.base, self.kwargs)
        return est.nano

    def settle(self, record: CallRecord, span: Any) -> None:
        gate = self.gate
        now = time.time()
        cost = self.cost(record)
        held = {id(a) for a in self.held}
        charges = [
            Charge(a.key, cost, a.budget.threshold_nanos(), _keep_until(a, now), id(a) in held)
            for a in self.applies
        ]
        try:
            settled = gate.ledger.settle(self.rid, charges, now)
        except LedgerError as exc:
            gate.emit.ledger_error((a.budget for a in self.applies), gate.ledger.url, exc, allowed=True)
            return
        for a, result in zip(self.applies, settled, strict=True):
            gate.emit.utilisation(a, result.spent)
            for index in bits(result.crossed):
                gate.emit.crossing(a, index, result.spent, span)


def _release_dead(ledger: Ledger, a: Applicable) -> bool:
    """Release the holds of processes on this host that died holding them."""
    released = False
    for rid in ledger.holders(a.key):
        if dead_local_holder(rid):
            ledger.release(rid, [a.key])
            released = True
    return released


def service_name() -> str | None:
    name = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        return name
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return None


# --- from the environment -------------------------------------------------------------------
_reported_files: set[tuple[str, float]] = set()


def load_from_env() -> Policy | None:
    """The policy of ``OTEL_TOKENS_BUDGETS``, problems logged once per file version."""
    value = os.environ.get(n.ENV_BUDGETS, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    policy, errors = load_policy(path)
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = 0.0
    if errors and (str(path), stamp) not in _reported_files:
        _reported_files.add((str(path), stamp))
        names = ", ".join(b.name for b in policy.budgets) or "none"
        tail = f"the budgets that parsed apply: {names} (check: otel-tokens budgets check {path})"
        if len(errors) == 1:  # one problem, one line
            logger.error("otel-tokens: %s; %s", errors[0], tail)
        else:
            for error in errors:
                logger.error("otel-tokens: %s", error)
            logger.error("otel-tokens: %d problems in %s=%s; %s", len(errors), n.ENV_BUDGETS, path, tail)
    return policy


def gate_from_env(pricer: Callable[[], PricerLike], meter: Meter) -> Gate | None:
    policy = load_from_env()
    if policy is None or not (policy.budgets or policy.models):
        return None
    return Gate(policy, pricer, meter)
