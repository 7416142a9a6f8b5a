"""The HTTP control face: what tests in another process and the local stack use to steer it.

    GET  /__emulator__/stats            request counts (``?path=&service_method=&model_method=``
                                        adds ``count`` for that filter) and the fault settings
    GET  /__emulator__/ledger           every ledger entry, in the contract's shape
    GET  /__emulator__/assets           every recorded generated asset, in the contract's shape
    GET  /__emulator__/accounts         every account: user_id, tier, balance
    POST /__emulator__/accounts         open one: {"platform_user_id", "tier", "balance"}
    POST /__emulator__/faults           set knobs: {"clear", "latency", "fail_next": {"n",
                                        "model_method"}, "lose_reply_next": {...},
                                        "refuse_connections_for": seconds,
                                        "refuse_connections": false}
    POST /__emulator__/reset-counters   zero the request counts

A faults body is checked whole before anything is applied, so a bad one changes nothing. These
requests are not counted as RPC requests and not delayed by the latency knob. The face has no
authentication: the emulator is a development tool and listens on 127.0.0.1 by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from .counters import RequestCounter
from .faults import DEFAULT_LOST_REPLY_METHOD, FaultKnobs
from .http_types import HttpRequest, HttpResponse, json_response, method_not_allowed
from .ledger import AccountExists, CreditLedger

CONTROL_PREFIX = "/__emulator__"
_FAULT_KEYS = frozenset(
    {
        "clear",
        "latency",
        "fail_next",
        "lose_reply_next",
        "refuse_connections",
        "refuse_connections_for",
    }
)

_Action = Callable[[], None]


class ControlError(ValueError):
    """A control request that cannot be applied: answered 400 (or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ControlFace:
    def __init__(
        self, *, ledger: CreditLedger, counter: RequestCounter, faults: FaultKnobs, database: str
    ) -> None:
        self._ledger = ledger
        self._counter = counter
        self._faults = faults
        self._database = database

    def handle(self, request: HttpRequest) -> HttpResponse:
        route = request.path.removeprefix(CONTROL_PREFIX)
        routes: dict[str, dict[str, Callable[[HttpRequest], HttpResponse]]] = {
            "/stats": {"GET": self._stats},
            "/ledger": {"GET": self._ledger_entries},
            "/assets": {"GET": self._assets},
            "/accounts": {"GET": self._accounts, "POST": self._add_account},
            "/faults": {"POST": self._set_faults},
            "/reset-counters": {"POST": self._reset_counters},
        }
        methods = routes.get(route)
        if methods is None:
            return json_response(404, {"error": f"no control route {request.path}"})
        handler = methods.get(request.method)
        if handler is None:
            return method_not_allowed(", ".join(sorted(methods)))
        try:
            return handler(request)
        except ControlError as exc:
            return json_response(exc.status, {"error": str(exc)})

    def _stats(self, request: HttpRequest) -> HttpResponse:
        document = {
            "database": self._database,
            **self._counter.snapshot(),
            "faults": self._faults.snapshot(),
        }
        filters = {key: values[-1] for key, values in parse_qs(request.query).items()}
        unknown = set(filters) - {"path", "service_method", "model_method"}
        if unknown:
            raise ControlError(f"unknown filters {sorted(unknown)}")
        if filters:
            document["count"] = self._counter.count(**filters)
        return json_response(200, document)

    def _ledger_entries(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"entries": self._ledger.entries()})

    def _assets(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"assets": self._ledger.assets()})

    def _accounts(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, {"accounts": self._ledger.accounts()})

    def _add_account(self, request: HttpRequest) -> HttpResponse:
        body = _json_object(request)
        user_id = body.get("platform_user_id")
        tier = body.get("tier")
        balance = body.get("balance", 0)
        if not isinstance(user_id, str) or not isinstance(tier, str):
            raise ControlError("platform_user_id and tier must be strings")
        try:
            self._ledger.add_account(user_id, tier, balance)
        except AccountExists as exc:
            raise ControlError(str(exc), 409) from None
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        return json_response(201, {"user_id": user_id, "tier": tier, "balance": balance})

    def _set_faults(self, request: HttpRequest) -> HttpResponse:
        actions = _fault_actions(self._faults, _json_object(request))
        for action in actions:
            action()
        return json_response(200, {"faults": self._faults.snapshot()})

    def _reset_counters(self, request: HttpRequest) -> HttpResponse:
        self._counter.reset()
        return json_response(200, {"ok": True})


def _json_object(request: HttpRequest) -> dict[str, Any]:
    try:
        document = json.loads(request.body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        raise ControlError("the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise ControlError("the body must be a JSON object")
    return document


def _fault_actions(faults: FaultKnobs, body: dict[str, Any]) -> list[_Action]:
    """Validate a faults body whole and return what to apply, ``clear`` first."""
    unknown = set(body) - _FAULT_KEYS
    if unknown:
        raise ControlError(f"unknown fault settings {sorted(unknown)}")
    actions: list[_Action] = []
    if body.get("clear") is True:
        actions.append(faults.clear)
    if "latency" in body:
        latency = _number(body["latency"], "latency", minimum=0.0)
        actions.append(lambda: setattr(faults, "latency", latency))
    if "fail_next" in body:
        n, method = _rule(body["fail_next"], "fail_next", default_method=None)
        actions.append(lambda: faults.fail_next(n, model_method=method))
    if "lose_reply_next" in body:
        n2, method2 = _rule(
            body["lose_reply_next"], "lose_reply_next", default_method=DEFAULT_LOST_REPLY_METHOD
        )
        actions.append(lambda: faults.lose_reply_next(n2, model_method=method2))
    if "refuse_connections" in body:
        if body["refuse_connections"] is not False:
            raise ControlError(
                "over HTTP, refuse with refuse_connections_for (seconds): nobody "
                "could reach this face to turn a permanent refusal off"
            )
        actions.append(lambda: faults.refuse_connections(False))
    if "refuse_connections_for" in body:
        seconds = _number(body["refuse_connections_for"], "refuse_connections_for", minimum=0.001)
        actions.append(lambda: faults.refuse_connections_for(seconds))
    return actions


def _rule(raw: Any, name: str, *, default_method: str | None) -> tuple[int, str | None]:
    if not isinstance(raw, dict):
        raise ControlError(f"{name} must be an object with n and model_method")
    n = raw.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ControlError(f"{name}.n must be an integer >= 1")
    method = raw.get("model_method", default_method)
    if method is not None and not isinstance(method, str):
        raise ControlError(f"{name}.model_method must be a string or null")
    return n, method


def _number(raw: Any, name: str, *, minimum: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < minimum:
        raise ControlError(f"{name} must be a number >= {minimum}")
    return float(raw)
