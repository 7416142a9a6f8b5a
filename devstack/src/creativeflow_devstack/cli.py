"""What the local stack adds to the ``creativeflow`` command line (entry point group
``creativeflow.cli``): the ``dev`` command, and the emulator's technical user for the operator
commands in development when no Odoo credentials are set."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from creativeflow.cli import Refused, need_odoo_credentials, port_number
from creativeflow.listening import PortInUse
from creativeflow.settings import Settings

if TYPE_CHECKING:
    from creativeflow.cli import Commands

log = logging.getLogger("creativeflow")


def add_commands(commands: Commands) -> None:
    dev = commands.add_parser(
        "dev",
        help="the whole stack locally: Odoo emulator, n8n simulator, notification sink, API",
        description=(
            "Run the whole stack on this machine against the real PostgreSQL and RabbitMQ: "
            "the Odoo emulator on ODOO_URL's port (its accounts and ledger kept in "
            ".devstack/ between runs), the n8n simulator, the notification sink and the API. "
            "Ctrl-C stops it."
        ),
    )
    dev.add_argument("--port", type=port_number, help="the API's port (default: API_PORT)")
    dev.add_argument(
        "--real-odoo",
        action="store_true",
        help="no emulator: use the Odoo at ODOO_URL, with ODOO_LOGIN and ODOO_API_KEY",
    )
    dev.add_argument(
        "--real-n8n",
        action="store_true",
        help="no n8n simulator: a real n8n consumes the jobs (or takes them at "
        "N8N_WEBHOOK_URL) and calls back",
    )
    dev.add_argument(
        "--results-queue",
        action="store_true",
        help="n8n's results come on the results queue, not over HTTP "
        "(as ENABLE_N8N_RESULTS_QUEUE=true)",
    )
    dev.add_argument(
        "--reset",
        action="store_true",
        help="start afresh: drop the tracking database and the emulator's saved state together",
    )
    dev.set_defaults(run=_dev)


def operator_settings(settings: Settings) -> Settings:
    """With no Odoo credentials set, the emulator's technical user, so ``sweep`` and
    ``reconcile`` work against the running local stack as they are."""
    from creativeflow_devstack.stack import with_emulator_user

    local = with_emulator_user(settings)
    if local is not settings:
        log.info("no ODOO_API_KEY or ODOO_PASSWORD: using the local stack emulator's user")
    return local


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow_devstack.stack import LocalStackOptions, StackRefused, run_local_stack

    if args.real_odoo:
        need_odoo_credentials(
            settings,
            "--real-odoo needs the technical user of the Odoo at ODOO_URL: set ODOO_LOGIN and "
            "ODOO_API_KEY (or ODOO_PASSWORD)",
        )
        if args.reset:
            raise Refused(
                "--reset empties the emulated Odoo with the tracking database; with --real-odoo "
                "there is no emulator: a real Odoo's ledger is not reset (leave out --reset)"
            )
    if args.results_queue:
        settings = settings.model_copy(update={"enable_n8n_results_queue": True})
    try:
        return run_local_stack(
            settings,
            api_port=args.port or settings.api_port,
            options=LocalStackOptions(
                emulate_odoo=not args.real_odoo,
                simulate_n8n=not args.real_n8n,
                reset=args.reset,
            ),
        )
    except (PortInUse, StackRefused) as refused:
        raise Refused(str(refused)) from None
