"""The Odoo credit adapter: Odoo is the authority over tiers, prices, balances and the ledger.

- ``OdooConfig``: where Odoo is and how to log in (the secret never shows in a repr or message);
- ``OdooClient``: the blocking client, one per thread (XML-RPC, JSON-RPC through odoorpc, or
  Odoo 19's JSON-2 through httpx);
- ``AsyncOdooCredits``: the async face the use cases await (a bounded pool of per-thread clients);
- the errors, documented in ``creativeflow.adapters.odoo.errors``.
"""

from creativeflow.adapters.odoo.client import OdooClient
from creativeflow.adapters.odoo.config import OdooConfig
from creativeflow.adapters.odoo.credits import AsyncOdooCredits
from creativeflow.adapters.odoo.errors import (
    OdooAccessError,
    OdooAuthenticationError,
    OdooContractError,
    OdooError,
    OdooOutcomeUnknown,
    OdooRejected,
    OdooServerError,
    OdooUnavailable,
    OdooUserError,
)

__all__ = [
    "AsyncOdooCredits",
    "OdooAccessError",
    "OdooAuthenticationError",
    "OdooClient",
    "OdooConfig",
    "OdooContractError",
    "OdooError",
    "OdooOutcomeUnknown",
    "OdooRejected",
    "OdooServerError",
    "OdooUnavailable",
    "OdooUserError",
]
