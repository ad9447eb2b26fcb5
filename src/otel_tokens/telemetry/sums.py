"""Counters summed in process, reported through observable counters.

Recording a point through the SDK costs several microseconds (attribute cleaning, hashing,
a lock per instrument); a call updates a dozen counters over the same attribute set. So a
call adds its numbers to one row of a `SumTable` (the recorder keeps the row per call
shape and adds under the table's lock), and the observable counters read the rows at
collection time. Totals are identical to synchronous
counters (cumulative, monotonic); what is lost is exemplars, so the cost counter and the
histograms, which carry them, stay synchronous.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

Key = frozenset[tuple[str, Any]]


class SumTable:
    """Rows of running sums, one per distinct attribute set; `columns` numbers per row."""

    __slots__ = ("_columns", "_lock", "_rows")

    def __init__(self, columns: int, lock: threading.RLock | None = None) -> None:
        self._columns = columns
        # Reentrant, and nothing is iterated under it: if a garbage-collector finaliser ever
        # reached `add` while this thread sits in `snapshot`, it must neither deadlock nor
        # mutate a dict being iterated (finalisers defer their work; this is the second line).
        # Tables updated together by one call share one (`lock`).
        self._lock = lock if lock is not None else threading.RLock()
        self._rows: dict[Key, list[float]] = {}

    @property
    def lock(self) -> threading.RLock:
        """Hold it to add to rows got from `row()`."""
        return self._lock

    def row(self, key: Key) -> list[float]:
        """The row for `key`, made if new. Rows are never removed, so a caller may keep one
        (the recorder does, per call shape) and add to its columns under `lock`."""
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                fresh: list[float] = [0] * self._columns
                row = self._rows.setdefault(key, fresh)  # one C call: a nested caller keeps its row
            return row

    def snapshot(self) -> list[tuple[Key, list[float]]]:
        with self._lock:
            rows = self._rows.copy()  # one C call; the rows are read outside the lock
        return [(key, list(row)) for key, row in rows.items()]

    def observer(
        self, column: int, extra: Mapping[str, Any] | None = None
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """A callback reporting `column` of every row that has counted something."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            for key, row in self.snapshot():
                if row[column]:
                    attrs = dict(key)
                    if extra:
                        attrs.update(extra)
                    yield Observation(row[column], attrs)

        return observe


def observable_counter(
    meter: Meter,
    name: str,
    unit: str,
    description: str,
    callbacks: list[Callable[[CallbackOptions], Iterable[Observation]]],
) -> None:
    meter.create_observable_counter(name, callbacks=callbacks, unit=unit, description=description)
