"""The command line: ``serve``, ``migrate``, ``dev`` (the whole local stack), ``sweep`` and
``reconcile``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime

from creativeflow.logging_setup import configure_logging
from creativeflow.settings import Settings

log = logging.getLogger("creativeflow")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from creativeflow.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_config=None,
        access_log=False,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.adapters.tracking.migrate import upgrade

    upgrade(settings.database_url, args.revision)
    log.info("tracking database migrated to %s", args.revision)
    return 0


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.devstack.stack import run_local_stack

    return run_local_stack(settings, api_port=args.port or settings.api_port)


def _sweep(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.bootstrap import build_container

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

    default_since, default_until = default_window(datetime.now(UTC))
    until = _utc(args.until) if args.until else default_until
    since = _utc(args.since) if args.since else until - (default_until - default_since)

    async def run() -> int:
        container = build_container(settings)
        try:
            report = await container.reconciler.reconcile(since, until)
        finally:
            await container.close()
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.clean else 1

    return asyncio.run(run())


def _utc(text: str) -> datetime:
    from datetime import UTC, datetime

    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creativeflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (uvicorn)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="apply the tracking database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(run=_migrate)
    dev = commands.add_parser(
        "dev", help="the whole stack locally: emulated Odoo, simulated n8n, notification sink, API"
    )
    dev.add_argument("--port", type=int)
    dev.set_defaults(run=_dev)
    sweep = commands.add_parser("sweep", help="run one recovery sweep and print what it settled")
    sweep.set_defaults(run=_sweep)
    reconcile = commands.add_parser(
        "reconcile", help="compare tracking with Odoo's ledger; exit 1 on any mismatch"
    )
    reconcile.add_argument("--since", help="ISO 8601 start (default: until - 24 hours)")
    reconcile.add_argument("--until", help="ISO 8601 end (default: now - 5 minutes)")
    reconcile.set_defaults(run=_reconcile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, settings.enable_detailed_logging)
    result: int = args.run(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
