"""Counts of the HTTP requests the emulator served, for performance budgets in tests.

The design budgets Odoo round trips (one per submit, none per successful callback, one login per
client); tests prove those budgets by counting what reached the emulator. Each request is
recorded with its path, its service method (``"common.login"``, ``"object.execute_kw"``) and,
for model calls, its model method (``"creativeflow.credit.service.debit"``), so a count can be
asked by any combination of the three.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_Key = tuple[str, str | None, str | None]


class RequestCounter:
    """Thread-safe tallies of (path, service method, model method)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[_Key] = Counter()

    def record(self, path: str, service_method: str | None, model_method: str | None) -> None:
        with self._lock:
            self._counts[(path, service_method, model_method)] += 1

    def count(
        self,
        path: str | None = None,
        service_method: str | None = None,
        model_method: str | None = None,
    ) -> int:
        """Requests matching every filter given; all requests when none is given."""
        wanted = (path, service_method, model_method)
        with self._lock:
            return sum(
                n
                for key, n in self._counts.items()
                if all(want is None or want == got for want, got in zip(wanted, key, strict=True))
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            items = list(self._counts.items())
        return {
            "requests": sum(n for _, n in items),
            "by_path": _tally(items, 0),
            "by_service_method": _tally(items, 1),
            "by_model_method": _tally(items, 2),
        }


def _tally(items: list[tuple[_Key, int]], position: int) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for key, n in items:
        label = key[position]
        if label is not None:
            totals[label] += n
    return dict(totals)
