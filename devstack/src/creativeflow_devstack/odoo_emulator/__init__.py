"""An Odoo emulator speaking Odoo's real wire protocols over HTTP, for tests and the local stack.

It implements the ``creativeflow_credits`` addon's contract (``odoo_contracts/README.md``): tiers,
accounts, idempotent debits and refunds, the ledger. It answers on ``/xmlrpc/2/common``,
``/xmlrpc/2/object``, ``/jsonrpc`` and ``/web/webclient/version_info`` as Odoo does, with Odoo's
own result and error shapes, and behaves as the version it claims (``server_version``, 18.0 by
default, the addon's version): claiming 19.0 or later it also serves Odoo 19's JSON-2 routes
(``POST /json/2/<model>/<method>`` with a bearer API key, and ``GET /web/version``); claiming
18.0 it sends ``/json/...`` to its login page with a 303, as Odoo 18 does (``versions.py``). It
has fault knobs (latency, refused connections, application errors, lost replies) to exercise a
client's failure handling for real::

    from creativeflow_devstack.odoo_emulator import OdooEmulator

    with OdooEmulator() as emu:          # default seed, 127.0.0.1, a free port, Odoo 18.0
        emu.url, emu.database
        emu.faults.lose_reply_next(1)    # the next debit is applied, its reply lost

Run it on its own with ``python -m creativeflow_devstack.odoo_emulator --port 8069`` (add
``--server-version 19.0`` for JSON-2).
"""

from __future__ import annotations

from .emulator import OdooEmulator
from .faults import DEFAULT_LOST_REPLY_METHOD, FaultKnobs
from .rules import Tier
from .seed import AccountSeed, Seed, SeedError, UserSeed, default_seed_path, load_seed, parse_seed
from .services import VERSION_INFO

__all__ = [
    "DEFAULT_LOST_REPLY_METHOD",
    "VERSION_INFO",
    "AccountSeed",
    "FaultKnobs",
    "OdooEmulator",
    "Seed",
    "SeedError",
    "Tier",
    "UserSeed",
    "default_seed_path",
    "load_seed",
    "parse_seed",
]
