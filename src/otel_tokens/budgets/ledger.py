"""The ledger: what each budget has spent and holds, shared by every process that uses it.

A key is (budget, scope, period). Amounts are integer nano-USD. The protocol:

* `reserve(rid, holds)`: atomically, for every hold, check ``spent + held + amount <=
  limit``; if all fit, record the holds under reservation id `rid`, else record nothing
  and return the first `Refusal`. Holds older than their expiry are dropped first.
* `settle(rid, charges)`: atomically drop `rid`'s holds on the charged keys, add each
  charge's cost to its key, and return per key the new spent amount and the bits of the
  thresholds that this settlement crossed first (each bit is returned once per key, ever:
  exactly one process reports a crossing).
* `release(rid, keys)`: drop `rid`'s holds (the call failed before costing anything).
* `holders(key)`: the reservation ids holding on a key (to drop those of dead processes).
* `rows(budget, period)`: every scope's state, for ``otel-tokens budgets status``.

Reservation ids are ``host:pid:random``, so any process on the same host can tell that a
holder died (`dead_local_holder`) and release its holds at once; holds of other hosts
expire after their TTL (`reservation_ttl_s`).

`ledgers.open_ledger()` picks one from ``OTEL_TOKENS_LEDGER``.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from otel_tokens import names as n

Key = tuple[str, str, str]  # budget, scope, period
DEFAULT_TTL_S: Final = 900.0  # a reservation outlives the longest call it guards
KEEP_S: Final = 35 * 86400.0  # ledger rows outlive their period by this much (status, audits)
LEDGER_FILE: Final = "budgets.db"
_HOST: Final = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Hold:
    key: Key
    amount: int
    limit: int
    keep_until: float


@dataclass(frozen=True, slots=True)
class Refusal:
    index: int  # of the hold that did not fit
    spent: int
    held: int


@dataclass(frozen=True, slots=True)
class Charge:
    key: Key
    cost: int
    thresholds: tuple[int, ...]
    keep_until: float
    held: bool = True  # False: this call reserved nothing on this key (a soft budget)


@dataclass(frozen=True, slots=True)
class Settled:
    spent: int
    crossed: int  # bit i: threshold i crossed by this settlement


@dataclass(frozen=True, slots=True)
class Row:
    scope: str
    spent: int
    held: int
    first: float
    updated: float


class LedgerError(Exception):
    """The ledger could not be read or written."""


class Ledger(Protocol):
    url: str

    def reserve(self, rid: str, holds: Sequence[Hold], expires: float, now: float) -> Refusal | None: ...
    def settle(self, rid: str, charges: Sequence[Charge], now: float) -> list[Settled]: ...
    def release(self, rid: str, keys: Sequence[Key]) -> None: ...
    def holders(self, key: Key) -> list[str]: ...
    def rows(self, budget: str, period: str) -> list[Row]: ...
    def close(self) -> None: ...


_serial = itertools.count()
_token: tuple[int, str] = (0, "")


def reservation_id() -> str:
    """``host:pid:token-serial``: unique per process (a forked child draws a new token)."""
    global _token
    pid = os.getpid()
    if _token[0] != pid:
        _token = (pid, uuid.uuid4().hex[:16])
    return f"{_HOST}:{pid}:{_token[1]}-{next(_serial)}"


def reservation_ttl_s() -> float:
    try:
        return float(os.environ.get(n.ENV_RESERVATION_TTL, "") or DEFAULT_TTL_S)
    except ValueError:
        return DEFAULT_TTL_S


def dead_local_holder(rid: str) -> bool:
    """True when `rid` was made on this host by a process that no longer runs."""
    host, _, rest = rid.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    if sys.platform.startswith("linux"):  # a killed child its parent has not reaped yet
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            return stat.rpartition(")")[2].split()[0] in ("Z", "X")
        except (OSError, IndexError):
            return True
    return False
