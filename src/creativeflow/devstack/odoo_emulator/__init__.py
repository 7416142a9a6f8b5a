"""An Odoo 18 emulator speaking Odoo's real wire protocol over HTTP, for tests and the local stack.

It implements the ``creativeflow_credits`` addon's contract (``odoo_contracts/README.md``): tiers,
accounts, idempotent debits and refunds, the ledger. It answers on ``/xmlrpc/2/common``,
``/xmlrpc/2/object``, ``/jsonrpc`` and ``/web/webclient/version_info`` with Odoo's own result and
error shapes, and has fault knobs (latency, refused connections, application errors, lost
replies) to exercise a client's failure handling for real::

    from creativeflow.devstack.odoo_emulator import OdooEmulator

    with OdooEmulator() as emu:          # default seed, 127.0.0.1, a free port
        emu.url, emu.database
        emu.faults.lose_reply_next(1)    # the next debit is applied, its reply lost

Run it on its own with ``python -m creativeflow.devstack.odoo_emulator --port 8069``.
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
