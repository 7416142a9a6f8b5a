"""Fault knobs: the ways a real Odoo misbehaves, on demand and deterministically.

The orchestrator's adapter must tell "never reached Odoo" (safe to retry, nothing charged) from
"Odoo may have applied it" (settle later from the ledger). These knobs produce each case for real,
over the wire:

- ``latency``: seconds added to every RPC (a slow Odoo, or a client timeout when large);
- ``refuse_connections``: the listening socket is closed, so connecting fails with
  ``ConnectionRefusedError``; reopened on the same port when turned off;
- ``fail_next``: the next n matching calls answer an application error (fault 1) and change
  nothing, like a rolled-back transaction;
- ``lose_reply_next``: the next n matching calls are applied, then the connection is dropped
  without any HTTP response, like a proxy or network failing after the commit.

A rule matches a call by ``model_method`` (``"<model>.<method>"``, e.g.
``"creativeflow.credit.service.debit"``); ``None`` matches every RPC call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_LOST_REPLY_METHOD = "creativeflow.credit.service.debit"

ConnectionSwitch = Callable[[bool], None]
"""Called with ``True`` to stop accepting connections and ``False`` to accept them again."""


@dataclass(slots=True)
class _Rule:
    remaining: int
    model_method: str | None

    def matches(self, model_method: str | None) -> bool:
        return self.model_method is None or self.model_method == model_method

    def as_dict(self) -> dict[str, Any]:
        return {"remaining": self.remaining, "model_method": self.model_method}


def _take(rules: list[_Rule], model_method: str | None) -> bool:
    """Consume one use of the first rule matching the call, dropping exhausted rules."""
    for rule in rules:
        if rule.matches(model_method):
            rule.remaining -= 1
            if rule.remaining == 0:
                rules.remove(rule)
            return True
    return False


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError("n must be an integer >= 1")


class FaultKnobs:
    """The emulator's fault settings; safe to change from any thread while it serves."""

    def __init__(self, connection_switch: ConnectionSwitch | None = None) -> None:
        self._lock = threading.Lock()
        # Serialises refusal changes so the socket state always follows the last call.
        self._switch_lock = threading.Lock()
        self._switch = connection_switch
        self._latency = 0.0
        self._refusing = False
        self._reopen_timer: threading.Timer | None = None
        self._failures: list[_Rule] = []
        self._lost_replies: list[_Rule] = []

    @property
    def latency(self) -> float:
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError("latency must be a number of seconds >= 0")
        with self._lock:
            self._latency = float(seconds)

    @property
    def refusing(self) -> bool:
        with self._lock:
            return self._refusing

    def refuse_connections(self, refuse: bool = True) -> None:
        """Really refuse TCP connections (``True``) or accept them again (``False``)."""
        with self._switch_lock:
            self._cancel_reopen_timer()
            self._set_refusing(refuse)

    def refuse_connections_for(self, seconds: float) -> None:
        """Refuse connections now and accept them again after ``seconds``.

        The HTTP control face needs this form: once the socket is closed nobody can reach it to
        turn refusal off.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError("seconds must be a number > 0")
        with self._switch_lock:
            self._cancel_reopen_timer()
            self._set_refusing(True)
            timer = threading.Timer(float(seconds), self._reopen_after_delay)
            timer.args = (timer,)
            timer.daemon = True
            self._reopen_timer = timer
            timer.start()

    def fail_next(self, n: int = 1, model_method: str | None = None) -> None:
        """The next ``n`` matching calls answer fault 1 and apply nothing."""
        _check_count(n)
        with self._lock:
            self._failures.append(_Rule(n, model_method))

    def lose_reply_next(
        self, n: int = 1, model_method: str | None = DEFAULT_LOST_REPLY_METHOD
    ) -> None:
        """The next ``n`` matching calls are applied, then their connections dropped unanswered."""
        _check_count(n)
        with self._lock:
            self._lost_replies.append(_Rule(n, model_method))

    def clear(self) -> None:
        """Back to a well-behaved server: no latency, no pending faults, connections accepted."""
        with self._lock:
            self._latency = 0.0
            self._failures.clear()
            self._lost_replies.clear()
        self.refuse_connections(False)

    def close(self) -> None:
        """Stop a pending reopen timer (the emulator is stopping)."""
        with self._switch_lock:
            self._cancel_reopen_timer()

    # -- used by the server, once per call -----------------------------------------------------

    def take_failure(self, model_method: str | None) -> bool:
        with self._lock:
            return _take(self._failures, model_method)

    def take_lost_reply(self, model_method: str | None) -> bool:
        with self._lock:
            return _take(self._lost_replies, model_method)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self._latency,
                "refusing_connections": self._refusing,
                "fail_next": [rule.as_dict() for rule in self._failures],
                "lose_reply_next": [rule.as_dict() for rule in self._lost_replies],
            }

    # -- internals -----------------------------------------------------------------------------

    def _set_refusing(self, refuse: bool) -> None:
        # Switch first: if the port cannot be bound again, the state must still say "refusing".
        if self._switch is not None:
            self._switch(bool(refuse))
        with self._lock:
            self._refusing = bool(refuse)

    def _reopen_after_delay(self, timer: threading.Timer) -> None:
        with self._switch_lock:
            if self._reopen_timer is not timer:  # cancelled or superseded meanwhile
                return
            self._reopen_timer = None
            self._set_refusing(False)

    def _cancel_reopen_timer(self) -> None:
        if self._reopen_timer is not None:
            self._reopen_timer.cancel()
            self._reopen_timer = None
