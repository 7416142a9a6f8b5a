"""What the Odoo adapter raises, and what each error promises about the ledger.

    OdooError
    ├── OdooUnavailable          (CreditServiceUnavailable, 503)  nothing was applied: Odoo was
    │   │                         never reached, or answered a fault (transaction rolled back)
    │   ├── OdooOutcomeUnknown   (CreditOutcomeUnknown, 503)  a debit or refund may have been
    │   │                         applied: only ``ledger_by_requests`` can tell
    │   ├── OdooServerError      XML-RPC fault 1, any other JSON-RPC ``data.name``, a JSON-2
    │   │                         error body with another status (404, 500) (rolled back)
    │   └── OdooUserError        fault 2, ``UserError`` / ``ValidationError``, JSON-2 422
    │                             (rolled back)
    ├── OdooAuthenticationError  (CreditServiceUnavailable, 503)  wrong login, password or API key
    │                             (JSON-2: HTTP 401)
    ├── OdooAccessError          (CreditServiceUnavailable, 503)  the user lacks the rights, or the
    │                             method is private: a configuration fault (JSON-2: HTTP 403)
    ├── OdooRejected             (CreditsRefused, 402/403/409/422/429)  a business refusal:
    │                             ``code`` and the figures Odoo gave (``required``, ``balance``,
    │                             ``reason``...)
    └── OdooContractError        (CreditOutcomeUnknown, 503)  the reply is not of the documented
                                  shape; for a debit or refund it may still have been applied

Only transport faults are retried by the client, and only ``OdooOutcomeUnknown`` and
``OdooContractError`` leave a credit movement in doubt. No message carries the password or API key:
the client scrubs its secret from every text that comes from the server before it raises.
"""

from __future__ import annotations

from typing import Any

from creativeflow.domain.errors import (
    CreditOutcomeUnknown,
    CreditServiceUnavailable,
    CreditsRefused,
)


class OdooError(Exception):
    """Base of everything the adapter raises.

    ``remote_name`` is what Odoo named the exception (JSON-RPC ``data.name``, JSON-2 ``name``, or
    ``xmlrpc.fault.<n>``), when the error came from a server fault.
    """

    remote_name: str | None = None


class OdooUnavailable(OdooError, CreditServiceUnavailable):
    """Odoo could not serve the call, and nothing was applied."""


class OdooOutcomeUnknown(OdooUnavailable, CreditOutcomeUnknown):
    """A debit or refund may have been applied; recovery settles it from Odoo's ledger."""


class OdooServerError(OdooUnavailable):
    """An exception inside Odoo; Odoo rolled the transaction back."""


class OdooUserError(OdooUnavailable):
    """Odoo raised a ``UserError`` or ``ValidationError``; the transaction was rolled back."""


class OdooAuthenticationError(OdooError, CreditServiceUnavailable):
    """Odoo refused the login, password or API key, even after logging in again once."""


class OdooAccessError(OdooError, CreditServiceUnavailable):
    """The technical user may not call this (missing group, private method)."""


class OdooContractError(OdooError, CreditOutcomeUnknown):
    """Odoo answered something the contract does not describe (a missing key, a wrong type)."""


class OdooRejected(OdooError, CreditsRefused):
    """Odoo refused the operation for a business reason (``ok: false``); nothing was written.

    ``code`` is the contract's stable code; ``figures`` holds the other keys of the reply (for
    example ``required`` and ``balance`` for ``insufficient_credits``). Odoo's own ``detail``
    text, when it sent one, is the error's ``detail``.
    """

    def __init__(self, code: str, **figures: Any) -> None:
        odoo_detail = figures.pop("detail", None)
        detail = f"Odoo refused the operation: {code}"
        if isinstance(odoo_detail, str) and odoo_detail:
            detail = f"{detail} ({odoo_detail})"
        CreditsRefused.__init__(self, code, detail, **figures)
        self.odoo_detail: str | None = odoo_detail if isinstance(odoo_detail, str) else None


def scrub(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` masked, so no message ever carries it."""
    if not secret:
        return text
    return text.replace(secret, "********")
