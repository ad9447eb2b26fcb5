"""The exceptions a budget raises into the user's code (exported from `otel_tokens`)."""

from __future__ import annotations

from datetime import datetime


class BudgetExceeded(Exception):
    """A hard budget (``action: block``) refused a call before it was sent.

    Attributes: ``budget`` (its name), ``scope`` (e.g. ``user=alice``, ``task_id=...``),
    ``limit_usd``, ``spent_usd`` (settled, plus what calls in flight hold; None when the
    ledger was unreachable), ``estimate_usd`` (this call's upper bound), ``period``
    (day | week | month | task) and ``resets_at`` (None for a task budget).
    """

    def __init__(
        self,
        *,
        budget: str,
        scope: str,
        limit_usd: float,
        spent_usd: float | None,
        estimate_usd: float,
        period: str,
        resets_at: datetime | None,
        reason: str | None = None,
    ) -> None:
        self.budget = budget
        self.scope = scope
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd
        self.period = period
        self.resets_at = resets_at
        super().__init__(reason or self._message())

    def _message(self) -> str:
        spent = self.spent_usd or 0.0
        left = max(self.limit_usd - spent, 0.0)
        when = (
            f"it resets at {self.resets_at.isoformat(timespec='minutes')}"
            if self.resets_at is not None
            else "it is per task run: a new run starts with the full amount"
        )
        return (
            f"budget {self.budget!r} ({self.scope}) blocks this call: ${spent:.6g} of ${self.limit_usd:.6g}"
            f" spent or held this {self.period}, ${left:.6g} left, this call may cost up to"
            f" ${self.estimate_usd:.6g}; {when}. To allow more, raise limit_usd of {self.budget!r}"
            " in the file OTEL_TOKENS_BUDGETS names (or lower max_tokens)."
        )


class ModelDenied(BudgetExceeded):
    """A ``models:`` rule with ``action: block`` denies this model for this work."""
