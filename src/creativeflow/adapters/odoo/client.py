"""``OdooClient``: the blocking Odoo credit client. One per thread, by design.

Over XML-RPC and JSON-RPC it logs in lazily, once, and keeps the uid (Odoo hashes the password with
600,000 pbkdf2 rounds per login); it logs in again once when Odoo answers ``AccessDenied`` on a
call, then gives up with ``OdooAuthenticationError``. Over JSON-2 there is no login: every request
carries the API key, so a call is one HTTP request, and a refused key is an
``OdooAuthenticationError`` at once (``authenticate`` only checks the key and learns the uid). It
retries transport faults only, with full-jitter exponential
backoff, at most ``max_attempts`` tries a call: this is safe because ``debit`` and ``refund`` are
idempotent in Odoo. Once any try of a changing call may have reached Odoo, the call can only fail
with ``OdooOutcomeUnknown``; the ledger settles it later.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from creativeflow.adapters.odoo import replies
from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.adapters.odoo.errors import (
    OdooAuthenticationError,
    OdooError,
    OdooOutcomeUnknown,
    OdooUnavailable,
)
from creativeflow.adapters.odoo.json2_transport import Json2Transport
from creativeflow.adapters.odoo.jsonrpc_transport import JsonRpcTransport
from creativeflow.adapters.odoo.signatures import SERVICE_MODEL
from creativeflow.adapters.odoo.transport import RpcTransport, TransportFault
from creativeflow.adapters.odoo.xmlrpc_transport import XmlRpcTransport
from creativeflow.domain.credits import (
    LEDGER_TIMESTAMP,
    CreditReceipt,
    Entitlements,
    GenerationSpec,
    LedgerEntry,
    LedgerPage,
    Quote,
)
from creativeflow.domain.generated_assets import GeneratedAsset, RecordedAsset

logger = logging.getLogger(__name__)

LEDGER_BY_REQUESTS_LIMIT = 500


def make_transport(config: OdooConfig) -> RpcTransport:
    """The transport the configuration asks for."""
    if config.protocol == "json2":
        return Json2Transport(config)
    if config.protocol == "jsonrpc":
        return JsonRpcTransport(config)
    return XmlRpcTransport(config)


def odoo_datetime(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, as Odoo stores ``create_date``; naive means UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.strftime(LEDGER_TIMESTAMP)


class _FailedTry(Exception):
    """One try failed in transit.

    ``may_have_applied`` when it was a changing call that Odoo may have received.
    """

    def __init__(self, fault: TransportFault, *, may_have_applied: bool) -> None:
        super().__init__(fault.description)
        self.fault = fault
        self.may_have_applied = may_have_applied


class _SessionRefused(Exception):
    """Odoo answered ``AccessDenied`` to a call made with a uid it had accepted."""

    def __init__(self, error: OdooError) -> None:
        super().__init__(str(error))
        self.error = error


class OdooClient:
    """Blocking client of ``creativeflow.credit.service``. Not thread-safe: one per thread.

    The first thread that uses a client owns it; using it from another thread raises
    ``RuntimeError`` (``close`` excepted), so a shared client is caught, not corrupted.
    """

    def __init__(
        self,
        config: OdooConfig,
        *,
        transport: RpcTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._transport = transport if transport is not None else make_transport(config)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._uid: int | None = None
        self._owner: int | None = None

    def __repr__(self) -> str:
        return f"OdooClient({self._config!r}, uid={self._uid!r})"

    def __enter__(self) -> OdooClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def config(self) -> OdooConfig:
        return self._config

    @property
    def uid(self) -> int | None:
        """The uid Odoo gave at login, or ``None`` before the first login."""
        return self._uid

    # -- public calls --------------------------------------------------------------------------

    def authenticate(self) -> int:
        """Log in if not yet logged in; the uid. Retries transport faults.

        Over JSON-2 this is optional (calls need no login): it checks the API key with one
        request (``res.users/context_get``) and learns its user's uid.
        """
        self._check_owner()
        if self._uid is None:
            self._with_retries("login", changing=False, attempt=self._logged_in_uid)
        assert self._uid is not None
        return self._uid

    def ping(self) -> bool:
        """Whether Odoo answers ``common.version`` (one try, no login): for readiness probes."""
        self._check_owner()
        started = time.perf_counter()
        try:
            version = self._transport.version()
        except (TransportFault, OdooError) as exc:
            logger.info("odoo ping failed: %s", exc)
            return False
        answered = isinstance(version, dict) and "server_version" in version
        logger.debug("odoo ping %s in %.1f ms", answered, _elapsed_ms(started))
        return answered

    def get_entitlements(self, user_id: str) -> Entitlements:
        result = self._execute("get_entitlements", [user_id], changing=False)
        return replies.entitlements(result, user_id)

    def debit(
        self,
        user_id: str,
        request_id: str,
        action: str,
        spec: GenerationSpec,
        correlation_id: str,
    ) -> CreditReceipt:
        args = [user_id, request_id, action, spec.as_odoo_spec(), correlation_id or False]
        result = self._execute("debit", args, changing=True)
        return replies.receipt("debit", result, "debited", request_id, action, user_id)

    def refund(
        self, request_id: str, action: str, reason: str, correlation_id: str
    ) -> CreditReceipt:
        args = [request_id, action, reason, correlation_id or False]
        result = self._execute("refund", args, changing=True)
        return replies.receipt("refund", result, "refunded", request_id, action)

    def ledger_by_requests(self, request_ids: Sequence[str]) -> tuple[LedgerEntry, ...]:
        """Every entry of those requests, ordered by id; batches of 500 ids (the contract's cap)."""
        ids = list(dict.fromkeys(request_ids))
        entries: list[LedgerEntry] = []
        for start in range(0, len(ids), LEDGER_BY_REQUESTS_LIMIT):
            batch = ids[start : start + LEDGER_BY_REQUESTS_LIMIT]
            result = self._execute("ledger_by_requests", [batch], changing=False)
            entries.extend(replies.ledger_entries(result))
        return tuple(sorted(entries, key=lambda entry: entry.id))

    def ledger_window(
        self, since: datetime, until: datetime, limit: int = 1000, offset: int = 0
    ) -> LedgerPage:
        """Entries with ``since <= create_date < until`` (naive datetimes are taken as UTC)."""
        args = [odoo_datetime(since), odoo_datetime(until), limit, offset]
        result = self._execute("ledger_window", args, changing=False)
        return replies.ledger_page(result)

    def quote(self, user_id: str, spec: GenerationSpec) -> Quote:
        """What a new request with ``spec`` would cost and whether the tier allows it."""
        result = self._execute("quote", [user_id, spec.as_odoo_spec()], changing=False)
        return replies.quote(result, user_id)

    def ledger_for_user(self, user_id: str, limit: int = 20, offset: int = 0) -> LedgerPage:
        """The user's own entries, newest first."""
        result = self._execute("ledger_for_user", [user_id, limit, offset], changing=False)
        return replies.user_ledger_page(result)

    def record_generated_asset(self, asset: GeneratedAsset) -> RecordedAsset:
        """Record the request's final asset once; idempotent per request id in Odoo, so it is
        retried like a debit, and a reply lost after sending is ``OdooOutcomeUnknown``."""
        result = self._execute("record_generated_asset", [asset.as_odoo_asset()], changing=True)
        return replies.recorded_asset(result, asset)

    def call(self, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Any method of any model, raw result; for diagnostics and the contract suite only.

        Treated as a changing call: a fault after it may have reached Odoo is an outcome unknown.
        JSON-2 passes arguments by name only: give keyword arguments, except to the contract's
        own methods (their positional arguments are named after the README).
        """
        return self._execute(method, list(args), changing=True, model=model, kwargs=kwargs)

    def close(self) -> None:
        """Forget the session; the client logs in again if used afterwards."""
        self._transport.close()
        self._uid = None

    # -- the call machinery ------------------------------------------------------------------

    def _execute(
        self,
        method: str,
        args: list[Any],
        *,
        changing: bool,
        model: str = SERVICE_MODEL,
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self._check_owner()
        return self._with_retries(
            f"{model}.{method}",
            changing=changing,
            attempt=lambda: self._try_once(model, method, args, kwargs or {}, changing),
        )

    def _with_retries(self, label: str, *, changing: bool, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` until it succeeds, fails for good, or ``max_attempts`` tries failed.

        A transport fault is retried after a backoff. ``AccessDenied`` on a call leads to one
        new login (not counted as a try). Any other error ends the call; once a try may have
        applied a changing call, the error is ``OdooOutcomeUnknown``.
        """
        started = time.perf_counter()
        may_have_applied = False
        logged_in_again = False
        tries = 0
        while True:
            tries += 1
            try:
                result = attempt()
            except _FailedTry as failed:
                may_have_applied = may_have_applied or failed.may_have_applied
                if tries >= self._config.max_attempts or not failed.fault.retryable:
                    raise self._gave_up(label, failed.fault, may_have_applied, tries) from (
                        failed.fault.__cause__
                    )
                delay = self._backoff(tries)
                logger.info(
                    "odoo %s try %d/%d failed (%s); retrying in %.3f s",
                    label,
                    tries,
                    self._config.max_attempts,
                    failed.fault.description,
                    delay,
                )
                self._sleep(delay)
                continue
            except _SessionRefused as refused:
                if logged_in_again:
                    settled = self._settled(label, refused.error, may_have_applied)
                    raise settled from (None if settled is refused.error else refused.error)
                logger.info("odoo %s: access denied for uid %s, logging in again", label, self._uid)
                logged_in_again = True
                self._uid = None
                tries -= 1
                continue
            except OdooError as error:
                settled = self._settled(label, error, may_have_applied)
                if settled is error:
                    raise
                raise settled from error
            logger.debug(
                "odoo %s ok in %.1f ms (%d %s)",
                label,
                _elapsed_ms(started),
                tries,
                "try" if tries == 1 else "tries",
            )
            return result

    def _settled(self, label: str, error: OdooError, may_have_applied: bool) -> OdooError:
        """The error a call ends with: ``error``, unless an earlier try may have applied it."""
        if not may_have_applied or isinstance(error, OdooOutcomeUnknown):
            logger.info("odoo %s failed: %s", label, error)
            return error
        logger.warning("odoo %s: outcome unknown, then %s", label, error)
        return OdooOutcomeUnknown(f"{label} may have been applied on an earlier try; then: {error}")

    def _try_once(
        self, model: str, method: str, args: list[Any], kwargs: dict[str, Any], changing: bool
    ) -> Any:
        needs_login = self._transport.needs_login
        if self._uid is None and needs_login:
            self._logged_in_uid()
        try:
            return self._transport.execute_kw(model, method, args, kwargs)
        except TransportFault as fault:
            raise _FailedTry(fault, may_have_applied=changing and fault.sent) from fault
        except OdooAuthenticationError as error:
            if not needs_login:
                raise  # JSON-2: the API key itself was refused; no session to renew
            raise _SessionRefused(error) from None

    def _logged_in_uid(self) -> int:
        started = time.perf_counter()
        try:
            uid = self._transport.login()
        except TransportFault as fault:
            raise _FailedTry(fault, may_have_applied=False) from fault
        if uid is None:
            raise OdooAuthenticationError(
                f"Odoo refused the credentials of {self._config.login!r} on database "
                f"{self._config.database!r} (wrong login, password or API key)"
            )
        logger.info(
            "odoo login %r on %r as uid %d in %.1f ms",
            self._config.login,
            self._config.database,
            uid,
            _elapsed_ms(started),
        )
        self._uid = uid
        return uid

    def _gave_up(
        self, label: str, fault: TransportFault, may_have_applied: bool, tries: int
    ) -> OdooUnavailable:
        summary = f"{label} failed after {tries} {'try' if tries == 1 else 'tries'}: "
        if may_have_applied:
            logger.warning("odoo %s: outcome unknown (%s)", label, fault.description)
            return OdooOutcomeUnknown(summary + f"{fault.description}; it may have been applied")
        logger.warning("odoo %s: unavailable (%s)", label, fault.description)
        return OdooUnavailable(summary + fault.description)

    def _backoff(self, tries: int) -> float:
        """Full jitter: uniform between 0 and the capped exponential step."""
        ceiling = min(self._config.backoff_max, self._config.backoff_base * 2 ** (tries - 1))
        return self._rng.uniform(0.0, ceiling)

    def _check_owner(self) -> None:
        current = threading.get_ident()
        if self._owner is None:
            self._owner = current
        elif self._owner != current:
            raise RuntimeError("OdooClient is not thread-safe: use one client per thread")


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
