"""The client's own rules, on a scripted transport: retries, re-login, what a failure means for
the ledger, strict reading of replies. No server needed; these pin down what the wire tests can
only produce some of."""

from __future__ import annotations

import random
import threading
from collections import deque
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from creativeflow.adapters.odoo import (
    OdooAuthenticationError,
    OdooClient,
    OdooConfig,
    OdooContractError,
    OdooOutcomeUnknown,
    OdooRejected,
    OdooServerError,
    OdooUnavailable,
)
from creativeflow.adapters.odoo.transport import TransportFault, fault_error
from creativeflow.domain.errors import CreditOutcomeUnknown, CreditServiceUnavailable

from .conftest import spec

SECRET = "s3cret-key-0123456789"
IN_FLIGHT = "too_many_requests_in_flight"
NOT_SENT = TransportFault("connection refused", sent=False)
SENT = TransportFault("no reply", sent=True)


def _config(**overrides: Any) -> OdooConfig:
    fields: dict[str, Any] = {
        "url": "http://odoo.invalid:8069",
        "database": "creativeflow",
        "login": "orchestrator",
        "secret": SECRET,
        "protocol": "xmlrpc",
        "max_attempts": 3,
        "backoff_base": 0.1,
        "backoff_max": 1.0,
    }
    fields.update(overrides)
    return OdooConfig(**fields)


def _debited(amount: object = 4, **changes: Any) -> dict[str, Any]:
    reply = {
        "ok": True,
        "code": "debited",
        "replay": False,
        "entry_id": 17,
        "user_id": "u-1",
        "request_id": "r-1",
        "action": "samples",
        "amount": amount,
        "balance_after": 96,
    }
    reply.update(changes)
    return reply


class ScriptedTransport:
    """Answers from scripts: each item is returned, or raised when it is an exception."""

    def __init__(
        self, calls: list[Any], logins: list[Any] | None = None, *, needs_login: bool = True
    ) -> None:
        self._calls = deque(calls)
        self._logins = deque(logins or [])
        self.sent: list[tuple[str, str, list[Any]]] = []
        self.sent_kwargs: list[dict[str, Any]] = []
        self.login_count = 0
        self.needs_login = needs_login  # False plays JSON-2: every request carries the key

    def version(self) -> Any:
        return {"server_version": "18.0"}

    def login(self) -> int | None:
        self.login_count += 1
        outcome = self._logins.popleft() if self._logins else 7
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def execute_kw(self, model: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.sent.append((model, method, args))
        self.sent_kwargs.append(kwargs)
        outcome = self._calls.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


def _client(
    transport: ScriptedTransport, sleeps: list[float] | None = None, **config: Any
) -> OdooClient:
    recorder = sleeps if sleeps is not None else []
    return OdooClient(_config(**config), transport=transport, sleep=recorder.append)


def _debit(client: OdooClient) -> Any:
    return client.debit("u-1", "r-1", "samples", spec(samples=2), "c-1")


# -- retries and what a failure means ---------------------------------------------------------


def test_faults_before_sending_are_retried_and_end_unavailable() -> None:
    transport = ScriptedTransport([NOT_SENT, NOT_SENT, NOT_SENT])
    sleeps: list[float] = []

    with pytest.raises(OdooUnavailable) as failed:
        _debit(_client(transport, sleeps))

    assert not isinstance(failed.value, CreditOutcomeUnknown)
    assert len(transport.sent) == 3
    assert len(sleeps) == 2


def test_once_a_debit_may_have_been_applied_the_end_is_outcome_unknown() -> None:
    transport = ScriptedTransport([SENT, NOT_SENT, NOT_SENT])

    with pytest.raises(OdooOutcomeUnknown):
        _debit(_client(transport))

    assert len(transport.sent) == 3


def test_a_server_fault_after_a_lost_debit_reply_is_outcome_unknown() -> None:
    server_error = fault_error("server_error", "boom", "builtins.RuntimeError")
    transport = ScriptedTransport([SENT, server_error])

    with pytest.raises(OdooOutcomeUnknown) as unknown:
        _debit(_client(transport))

    assert unknown.value.__cause__ is server_error


def test_a_server_fault_alone_is_raised_as_is_without_retry() -> None:
    transport = ScriptedTransport([fault_error("server_error", "boom", "builtins.KeyError")])

    with pytest.raises(OdooServerError):
        _debit(_client(transport))

    assert len(transport.sent) == 1


def test_a_lost_read_reply_is_unavailable() -> None:
    transport = ScriptedTransport([SENT, SENT, SENT])

    with pytest.raises(OdooUnavailable) as failed:
        _client(transport).get_entitlements("u-1")

    assert not isinstance(failed.value, CreditOutcomeUnknown)


def test_a_fault_a_retry_cannot_cure_is_not_retried() -> None:
    transport = ScriptedTransport([TransportFault("HTTP 404", sent=False, retryable=False)])

    with pytest.raises(OdooUnavailable):
        _debit(_client(transport))

    assert len(transport.sent) == 1


def test_a_retried_debit_returns_the_replayed_receipt() -> None:
    transport = ScriptedTransport([SENT, _debited(replay=True)])

    receipt = _debit(_client(transport))

    assert receipt.replay is True
    assert [call[1] for call in transport.sent] == ["debit", "debit"]
    assert transport.sent[0] == transport.sent[1]


class _TopOfRange(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    transport = ScriptedTransport([NOT_SENT] * 6)
    sleeps: list[float] = []
    client = OdooClient(
        _config(max_attempts=6), transport=transport, sleep=sleeps.append, rng=_TopOfRange()
    )

    with pytest.raises(OdooUnavailable):
        _debit(client)

    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])


def test_jittered_delays_stay_within_their_ceiling() -> None:
    transport = ScriptedTransport([NOT_SENT] * 8)
    sleeps: list[float] = []
    client = OdooClient(
        _config(max_attempts=8), transport=transport, sleep=sleeps.append, rng=random.Random(4)
    )

    with pytest.raises(OdooUnavailable):
        _debit(client)

    ceilings = [min(1.0, 0.1 * 2**n) for n in range(7)]
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) > 1


# -- logging in -------------------------------------------------------------------------------


def test_access_denied_on_a_call_logs_in_again_once() -> None:
    denied = fault_error("access_denied", "Access Denied", "odoo.exceptions.AccessDenied")
    transport = ScriptedTransport([denied, _debited()], logins=[7, 7])

    receipt = _debit(_client(transport, max_attempts=1))

    assert receipt.entry_id == 17
    assert transport.login_count == 2


def test_access_denied_twice_is_an_authentication_error() -> None:
    denied = fault_error("access_denied", "Access Denied", "odoo.exceptions.AccessDenied")
    transport = ScriptedTransport([denied, denied])

    with pytest.raises(OdooAuthenticationError) as failed:
        _debit(_client(transport))

    assert isinstance(failed.value, CreditServiceUnavailable)
    assert transport.login_count == 2


def test_a_refused_login_is_an_authentication_error_and_calls_nothing() -> None:
    transport = ScriptedTransport([], logins=[None])

    with pytest.raises(OdooAuthenticationError):
        _debit(_client(transport))

    assert transport.sent == []
    assert transport.login_count == 1


def test_a_transport_fault_at_login_is_retried() -> None:
    transport = ScriptedTransport([_debited()], logins=[SENT, 7])

    assert _debit(_client(transport)).entry_id == 17
    assert transport.login_count == 2


def test_a_login_free_transport_is_called_without_logging_in() -> None:
    transport = ScriptedTransport([_debited(), _debited(replay=True)], needs_login=False)
    client = _client(transport, protocol="json2")

    _debit(client)
    _debit(client)

    assert transport.login_count == 0
    assert client.uid is None
    assert len(transport.sent) == 2


def test_a_refused_key_on_a_login_free_transport_is_final_at_once() -> None:
    denied = fault_error("access_denied", "Invalid apikey", "werkzeug.exceptions.Unauthorized")
    transport = ScriptedTransport([denied, _debited()], needs_login=False)
    sleeps: list[float] = []

    with pytest.raises(OdooAuthenticationError) as failed:
        _debit(_client(transport, sleeps, protocol="json2"))

    assert failed.value is denied
    assert (transport.login_count, len(transport.sent), sleeps) == (0, 1, [])


def test_a_refused_key_after_a_lost_debit_reply_is_outcome_unknown() -> None:
    denied = fault_error("access_denied", "Invalid apikey", "werkzeug.exceptions.Unauthorized")
    transport = ScriptedTransport([SENT, denied], needs_login=False)

    with pytest.raises(OdooOutcomeUnknown):
        _debit(_client(transport, protocol="json2"))


def test_authenticate_on_a_login_free_transport_checks_the_key_once() -> None:
    transport = ScriptedTransport([], logins=[9], needs_login=False)
    client = _client(transport, protocol="json2")

    assert client.authenticate() == 9
    assert client.authenticate() == 9
    assert transport.login_count == 1


def test_call_passes_keyword_arguments_through() -> None:
    transport = ScriptedTransport([{"ok": True}])

    _client(transport).call("res.partner", "search_count", domain=[])

    assert transport.sent == [("res.partner", "search_count", [])]
    assert transport.sent_kwargs == [{"domain": []}]


def test_the_uid_is_kept_between_calls() -> None:
    transport = ScriptedTransport([_debited(), _debited(replay=True)])
    client = _client(transport)

    _debit(client)
    _debit(client)

    assert transport.login_count == 1
    assert client.uid == 7


# -- strict replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        None,
        [],
        {"code": "debited"},
        _debited(amount="4"),
        _debited(amount=True),
        _debited(replay=0),
        _debited(code="ok"),
        _debited(request_id="another-request"),
        _debited(action="final"),
        _debited(user_id="another-user"),
        {k: v for k, v in _debited().items() if k != "balance_after"},
        {"ok": False, "code": "no_such_code"},
        {"ok": False, "code": "insufficient_credits"},
        {"ok": False, "code": "tier_forbids", "reason": 3, "tier": "free"},
        # the cap on unfinished requests must say the count and the cap
        {"ok": False, "code": "tier_forbids", "reason": IN_FLIGHT, "tier": "free"},
        {
            "ok": False,
            "code": "tier_forbids",
            "reason": IN_FLIGHT,
            "tier": "free",
            "requests_in_flight": 2,
            "max_requests_in_flight": "2",
        },
        {"ok": False, "code": "nothing_to_refund"},
    ],
)
def test_a_reply_off_the_contract_is_a_contract_error(reply: Any) -> None:
    with pytest.raises(OdooContractError) as failed:
        _debit(_client(ScriptedTransport([reply])))

    assert isinstance(failed.value, CreditOutcomeUnknown)


def test_a_refusal_carries_its_code_and_figures() -> None:
    reply = {"ok": False, "code": "insufficient_credits", "required": 8, "balance": 3}

    with pytest.raises(OdooRejected) as refused:
        _debit(_client(ScriptedTransport([reply])))

    assert (refused.value.code, refused.value.figures) == (
        "insufficient_credits",
        {"required": 8, "balance": 3},
    )
    assert refused.value.status_code == 402


def test_the_cap_on_unfinished_requests_is_a_429_refusal_with_its_figures() -> None:
    reply = {
        "ok": False,
        "code": "tier_forbids",
        "reason": IN_FLIGHT,
        "tier": "free",
        "detail": "2 unfinished requests reach the cap of 2",
        "requests_in_flight": 2,
        "max_requests_in_flight": 2,
    }

    with pytest.raises(OdooRejected) as refused:
        _debit(_client(ScriptedTransport([reply])))

    assert refused.value.figures == {
        "reason": IN_FLIGHT,
        "tier": "free",
        "requests_in_flight": 2,
        "max_requests_in_flight": 2,
    }
    assert refused.value.status_code == 429


def test_a_tier_refusal_keeps_odoo_detail_as_the_detail() -> None:
    reply = {
        "ok": False,
        "code": "tier_forbids",
        "reason": "format_not_allowed",
        "tier": "free",
        "detail": "format 'gif' is not allowed",
    }

    with pytest.raises(OdooRejected) as refused:
        _debit(_client(ScriptedTransport([reply])))

    assert refused.value.figures == {"reason": "format_not_allowed", "tier": "free"}
    assert refused.value.odoo_detail == "format 'gif' is not allowed"
    assert refused.value.status_code == 403


def test_false_becomes_none_in_ledger_entries() -> None:
    entry = {
        "id": 3,
        "user_id": "u-1",
        "request_id": False,
        "action": False,
        "operation": "adjustment",
        "amount": -5,
        "balance_after": 10,
        "reason": False,
        "correlation_id": False,
        "created_at": "2026-11-21 13:04:29",
    }
    transport = ScriptedTransport([{"ok": True, "code": "ok", "entries": [entry]}])

    (read,) = _client(transport).ledger_by_requests(["r-1"])

    assert (read.request_id, read.action, read.reason, read.correlation_id) == (None,) * 4
    assert read.amount == -5


def test_ledger_by_requests_sends_batches_of_500_distinct_ids() -> None:
    empty = {"ok": True, "code": "ok", "entries": []}
    transport = ScriptedTransport([empty, empty, empty])
    ids = [f"r-{n}" for n in range(1001)] + ["r-0"]

    assert _client(transport).ledger_by_requests(ids) == ()

    assert [len(call[2][0]) for call in transport.sent] == [500, 500, 1]


def test_ledger_window_sends_utc_timestamps() -> None:
    transport = ScriptedTransport([{"ok": True, "code": "ok", "entries": [], "has_more": False}])
    paris = timezone(timedelta(hours=1))

    _client(transport).ledger_window(
        datetime(2026, 11, 21, 14, 0, 0, tzinfo=paris), datetime(2026, 11, 21, 13, 30, tzinfo=UTC)
    )

    assert transport.sent[0][2] == ["2026-11-21 13:00:00", "2026-11-21 13:30:00", 1000, 0]


# -- configuration and threads ----------------------------------------------------------------


def test_the_config_never_shows_its_secret() -> None:
    config = _config()

    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in repr(OdooClient(config, transport=ScriptedTransport([])))


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "ftp://odoo:8069"},
        {"url": "http://odoo:8069/odoo"},
        {"url": "http://user:pw@odoo:8069"},
        {"url": "http://odoo:notaport"},
        {"protocol": "grpc"},
        {"secret": ""},
        {"connect_timeout": 0},
        {"max_attempts": 0},
    ],
)
def test_a_bad_config_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _config(**overrides)


def test_a_client_used_from_a_second_thread_refuses() -> None:
    client = _client(ScriptedTransport([_debited(), _debited()]))
    _debit(client)
    errors: list[BaseException] = []

    def use_elsewhere() -> None:
        try:
            _debit(client)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use_elsewhere)
    thread.start()
    thread.join()

    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
