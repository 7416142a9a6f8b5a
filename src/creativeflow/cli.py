"""The command line: serve, migrate, dev (the whole local stack), sweep and reconcile.

A refusal (a setting that is wrong, a port in use, Odoo credentials missing) is one line on
stderr naming what to change, and exit code 2; never a traceback, never a secret's value."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from pydantic import ValidationError

from creativeflow import __version__
from creativeflow.listening import PortInUse, require_free_port
from creativeflow.logging_setup import configure_logging
from creativeflow.settings import Settings

log = logging.getLogger("creativeflow")

DESCRIPTION = (
    "CreativeFlow AI Generation Orchestrator: turns creative requests into AI generation jobs "
    "while Odoo stays the authority over credits. Settings come from the environment and .env "
    "(see .env.example)."
)
# the local stack's Odoo emulator: its technical user, used in development when no Odoo
# credentials are configured (the commands then talk to the emulator `creativeflow dev` runs)
EMULATOR_LOGIN = "orchestrator"
EMULATOR_PASSWORD = "orchestrator"


class Refused(Exception):
    """A command cannot run as configured; the message says what to change."""


def _with_local_odoo(settings: Settings) -> Settings:
    """In development, with no Odoo credentials set, use the local stack emulator's."""
    if settings.environment != "development" or settings.odoo_secret.get_secret_value():
        return settings
    from pydantic import SecretStr

    log.info("no ODOO_API_KEY or ODOO_PASSWORD: using the local stack's Odoo emulator user")
    return settings.model_copy(
        update={"odoo_login": EMULATOR_LOGIN, "odoo_password": SecretStr(EMULATOR_PASSWORD)}
    )


def _need_odoo(settings: Settings) -> None:
    if not settings.odoo_secret.get_secret_value() or not settings.odoo_login:
        raise Refused(
            "no Odoo credentials: set ODOO_LOGIN and ODOO_API_KEY (or ODOO_PASSWORD); with "
            "ENVIRONMENT=development the local stack's emulator user is used"
        )


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from creativeflow.api.app import create_app

    settings = _with_local_odoo(settings)
    _need_odoo(settings)
    host, port = args.host or settings.api_host, args.port or settings.api_port
    try:
        require_free_port(host, port, "API_PORT (or --port)")
    except PortInUse as taken:
        raise Refused(str(taken)) from None
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.adapters.tracking.databases import ensure_database
    from creativeflow.adapters.tracking.migrate import upgrade

    try:
        if ensure_database(settings.database_url):
            log.info("created the tracking database")
    except Exception as error:
        raise Refused(
            "the tracking database is missing and could not be created "
            f"({type(error).__name__}): create it, or give DATABASE_URL a role allowed to"
        ) from None
    upgrade(settings.database_url, args.revision)
    log.info("tracking database migrated to %s", args.revision)
    return 0


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.devstack.stack import LocalStackOptions, run_local_stack

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
    except PortInUse as taken:
        raise Refused(str(taken)) from None


def _sweep(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.bootstrap import build_container

    settings = _with_local_odoo(settings)
    _need_odoo(settings)

    async def run() -> int:
        container = build_container(settings)
        try:
            report = await container.recovery.sweep()
        finally:
            await container.close()
        print(report.summary())
        return 0

    return asyncio.run(run())


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """Print the findings as JSON; exit 1 when there is any (so a cron job or CI can alert)."""
    import json
    from datetime import UTC, datetime

    from creativeflow.api.routes.admin import default_window
    from creativeflow.bootstrap import build_container

    settings = _with_local_odoo(settings)
    _need_odoo(settings)
    default_since, default_until = default_window(datetime.now(UTC))
    until = args.until or default_until
    since = args.since or until - (default_until - default_since)
    if since >= until:
        raise Refused("--since must be before --until")

    async def run() -> int:
        container = build_container(settings)
        try:
            report = await container.reconciler.reconcile(since, until)
        finally:
            await container.close()
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.clean else 1

    return asyncio.run(run())


def _moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; UTC when it has no offset."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date or time, such as 2026-12-01 or "
            "2026-12-01T09:30:00+00:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creativeflow", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", help="what to run"
    )
    serve = commands.add_parser("serve", help="run the API", description="Run the API (uvicorn).")
    serve.add_argument("--host", help="address to listen on (default: API_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: API_PORT)")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="create the tracking database if missing and apply its migrations",
        description="Create the tracking database if it is missing, then apply the migrations.",
    )
    migrate.add_argument(
        "--revision", default="head", help="the Alembic revision to reach (default: head)"
    )
    migrate.set_defaults(run=_migrate)
    dev = commands.add_parser(
        "dev",
        help="the whole stack locally: Odoo emulator, n8n simulator, notification sink, API",
        description=(
            "Run the whole stack on this machine against the real PostgreSQL and RabbitMQ: "
            "the Odoo emulator (its state kept in .devstack/ between runs), the n8n simulator, "
            "the notification sink and the API. Ctrl-C stops it."
        ),
    )
    dev.add_argument("--port", type=int, help="the API's port (default: API_PORT)")
    dev.add_argument(
        "--real-odoo",
        action="store_true",
        help="use the Odoo at ODOO_URL (with ODOO_LOGIN and ODOO_API_KEY) instead of the emulator",
    )
    dev.add_argument(
        "--real-n8n",
        action="store_true",
        help="start no n8n simulator: a real n8n consumes the jobs and calls back",
    )
    dev.add_argument(
        "--reset",
        action="store_true",
        help="start afresh: empty the tracking database and the emulator's saved state together",
    )
    dev.set_defaults(run=_dev)
    sweep = commands.add_parser(
        "sweep",
        help="run one recovery sweep and print what it settled",
        description="Settle lost debit outcomes, retry refunds, fail and refund overdue requests.",
    )
    sweep.set_defaults(run=_sweep)
    reconcile = commands.add_parser(
        "reconcile",
        help="compare tracking with Odoo's ledger; exit 1 on any mismatch",
        description="Compare the tracking database with Odoo's credit ledger over a window and "
        "print every mismatch as JSON; exit 1 when there is any.",
    )
    reconcile.add_argument(
        "--since", type=_moment, help="ISO 8601 start, UTC if no offset (default: until - 24h)"
    )
    reconcile.add_argument(
        "--until", type=_moment, help="ISO 8601 end, UTC if no offset (default: now - 5 minutes)"
    )
    reconcile.set_defaults(run=_reconcile)
    return parser


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as invalid:
        # the setting and the rule only: pydantic's own text quotes the input, secrets included
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            for e in invalid.errors(include_input=False, include_url=False)
        )
        raise Refused(f"the settings are refused: {reasons}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings()
        configure_logging(settings.log_level, settings.log_format, settings.enable_detailed_logging)
        result: int = args.run(settings, args)
    except Refused as refused:
        print(f"creativeflow {args.command}: {refused}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
