"""The command line: serve, migrate, sweep and reconcile, and the commands that installed
distributions add through the ``creativeflow.cli`` entry points (``dev``, the whole local stack,
comes with the local stack's own package).

A refusal (a bad argument, a setting that is wrong, a port in use, Odoo credentials missing) is
one line on stderr naming what to change, and exit code 2. A dependency that does not answer
(PostgreSQL, Odoo) is one line saying which and where, and exit code 1. Never a traceback for
those, never a secret's value.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from pydantic import ValidationError

from creativeflow.listening import PortInUse, require_free_port
from creativeflow.logging_setup import configure_logging
from creativeflow.settings import Settings

log = logging.getLogger("creativeflow")

if TYPE_CHECKING:
    # the sub-command parsers are this module's one-line-error parser; plugins see argparse's
    Commands = argparse._SubParsersAction[Any]

DISTRIBUTION = "creativeflow-orchestrator"
PLUGIN_GROUP = "creativeflow.cli"
DESCRIPTION = (
    "CreativeFlow AI Generation Orchestrator: turns creative requests into AI generation jobs "
    "while Odoo stays the authority over credits. Settings come from the environment and .env "
    "(every one is in .env.example)."
)
EPILOG = (
    "Exit codes: 0 done; 1 a dependency did not answer, or sweep or reconcile found work "
    "left or a mismatch; 2 a refusal: an argument, a setting, a port or a credential to change."
)


class Refused(Exception):
    """A command cannot run as configured or called; the message says what to change."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument told in one line (argparse's own prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def version() -> str:
    """The installed package's version (its metadata), as pip and the image know it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree that was never installed
        from creativeflow import __version__

        return __version__


def _odoo_for(settings: Settings) -> Settings:
    """In development, with no Odoo credentials set, the local stack emulator's user: the
    operator commands then work against the running ``creativeflow dev`` as they are."""
    if settings.environment != "development":
        return settings
    for plugin in _plugins():
        settings = plugin.operator_settings(settings)
    return settings


class CommandPlugin(Protocol):
    """What an installed distribution adds to the command line, declared as an entry point
    of the ``creativeflow.cli`` group (the local stack's package adds ``dev``)."""

    def add_commands(self, commands: Commands) -> None:
        """Add its sub-commands; each sets ``run`` to a ``(settings, args) -> int``."""

    def operator_settings(self, settings: Settings) -> Settings:
        """The settings the operator commands use in development (``ENVIRONMENT=development``)."""


def _plugins() -> list[CommandPlugin]:
    from importlib.metadata import entry_points

    return [entry.load() for entry in entry_points(group=PLUGIN_GROUP)]


NO_ODOO_CREDENTIALS = (
    "no Odoo credentials: set ODOO_LOGIN and ODOO_API_KEY (or ODOO_PASSWORD); with "
    "ENVIRONMENT=development and none set, the local stack emulator's user is used"
)


def need_odoo_credentials(settings: Settings, refusal: str = NO_ODOO_CREDENTIALS) -> None:
    if not settings.odoo_secret.get_secret_value() or not settings.odoo_login:
        raise Refused(refusal)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from creativeflow.api.app import create_app

    host, port = args.host or settings.api_host, args.port or settings.api_port
    _require_port(host, port, "API_PORT (or --port)")
    settings = _odoo_for(settings)
    need_odoo_credentials(settings)
    from creativeflow.api.serving import Server

    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_config=None, access_log=False
    )
    Server(config).run()
    return 0


def _require_port(host: str, port: int, setting: str) -> None:
    try:
        require_free_port(host, port, setting)
    except PortInUse as taken:
        raise Refused(str(taken)) from None


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from creativeflow.adapters.tracking.databases import CannotCreate, ensure_database
    from creativeflow.adapters.tracking.migrate import upgrade

    try:
        if ensure_database(settings.database_url):
            log.info("created the tracking database")
    except CannotCreate as refused:
        raise Refused(str(refused)) from None
    upgrade(settings.database_url, args.revision)
    log.info("tracking database migrated to %s", args.revision)
    return 0


def _sweep(settings: Settings, args: argparse.Namespace) -> int:
    """Print what the sweep settled; exit 1 when a step could not finish (Odoo unavailable)."""
    from creativeflow.bootstrap import build_container

    settings = _odoo_for(settings)
    need_odoo_credentials(settings)

    async def run() -> int:
        container = build_container(settings)
        try:
            report = await container.recovery.sweep()
        finally:
            await container.close()
        print(report.summary())
        return 1 if report.errors else 0

    return asyncio.run(run())


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """Print the findings as JSON; exit 1 when there is any (so a cron job or CI can alert)."""
    import json
    from datetime import UTC, datetime

    from creativeflow.api.routes.admin import default_window
    from creativeflow.bootstrap import build_container

    settings = _odoo_for(settings)
    need_odoo_credentials(settings)
    default_since, default_until = default_window(datetime.now(UTC))
    until = args.until or default_until
    since = args.since or until - (default_until - default_since)
    if since >= until:
        raise Refused(f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})")

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


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="creativeflow", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version()}", help="print the version"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", help="what to run"
    )
    serve = commands.add_parser(
        "serve",
        help="run the API",
        description="Run the API (uvicorn, one process; scale out with replicas).",
    )
    serve.add_argument("--host", help="address to listen on (default: API_HOST)")
    serve.add_argument("--port", type=port_number, help="port to listen on (default: API_PORT)")
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="create the tracking database if missing and apply its migrations",
        description="Create the tracking database of DATABASE_URL (or AIGEN_DB_*) if it is "
        "missing, then apply the migrations.",
    )
    migrate.add_argument(
        "--revision", default="head", help="the Alembic revision to reach (default: head)"
    )
    migrate.set_defaults(run=_migrate)
    for plugin in _plugins():
        plugin.add_commands(commands)
    sweep = commands.add_parser(
        "sweep",
        help="run one recovery sweep and print what it settled",
        description="Settle lost debit outcomes, retry refunds, fail and refund overdue "
        "requests, purge old keys; exit 1 when a step could not finish.",
    )
    sweep.set_defaults(run=_sweep)
    reconcile = commands.add_parser(
        "reconcile",
        help="compare tracking with Odoo's ledger; exit 1 on any mismatch",
        description="Compare the tracking database with Odoo's credit ledger over a window and "
        "print every mismatch as JSON; exit 1 when there is any.",
    )
    reconcile.add_argument(
        "--since",
        type=_moment,
        metavar="TIME",
        help="start, ISO 8601 such as 2026-12-01 or 2026-12-01T09:30:00+00:00, UTC if no "
        "offset (default: 24 hours before --until)",
    )
    reconcile.add_argument(
        "--until",
        type=_moment,
        metavar="TIME",
        help="end, ISO 8601, UTC if no offset (default: 5 minutes ago, leaving the live flow "
        "to settle)",
    )
    reconcile.set_defaults(run=_reconcile)
    return parser


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as invalid:
        # the setting and the rule only: pydantic's own text quotes the input, secrets included
        raise Refused("the settings are refused: " + _reasons(invalid)) from None


def _reasons(invalid: ValidationError) -> str:
    reasons = []
    for error in invalid.errors(include_input=False, include_url=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        reasons.append(f"{where}: {message}" if where else message)
    return "; ".join(reasons)


def _logging(settings: Settings) -> None:
    try:
        configure_logging(settings.log_level, settings.log_format, settings.enable_detailed_logging)
    except ValueError:
        raise Refused(
            f"LOG_LEVEL: {settings.log_level!r} is not a level "
            "(DEBUG, INFO, WARNING, ERROR or CRITICAL)"
        ) from None


def _unanswered(error: Exception, settings: Settings) -> str | None:
    """One line for a dependency that did not answer; None for anything else (a bug: its
    traceback is worth more than a line)."""
    import psycopg2
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from creativeflow.adapters.odoo.errors import (
        OdooAccessError,
        OdooAuthenticationError,
        OdooUnavailable,
    )
    from creativeflow.adapters.rabbitmq.errors import BrokerUnreachable, TopologyError

    database = make_url(settings.database_url).render_as_string(hide_password=True)
    if isinstance(error, OperationalError | psycopg2.OperationalError):
        cause = error.orig if isinstance(error, OperationalError) else error
        first = (str(cause).strip() or type(error).__name__).splitlines()[0]
        todo = (
            "create it with creativeflow migrate"
            if "does not exist" in first
            else "start PostgreSQL, or check DATABASE_URL (or AIGEN_DB_*)"
        )
        return f"the tracking database {database} did not answer ({first}): {todo}"
    if isinstance(error, ProgrammingError) and "does not exist" in str(error.orig):
        return f"the tracking database {database} has no tables yet: run creativeflow migrate"
    if isinstance(error, BrokerUnreachable):
        return (
            f"RabbitMQ did not answer ({error.reason}): start it, or check RABBITMQ_URL "
            "(or RABBITMQ_HOST, RABBITMQ_PORT, ...)"
        )
    if isinstance(error, TopologyError):
        return f"RabbitMQ refused the job topology ({error.reason}): see docs/operations.md"
    odoo = f"Odoo at {settings.odoo_url} (ODOO_URL)"
    if isinstance(error, OdooAuthenticationError):
        return (
            f"{odoo} refused the login {settings.odoo_login!r} (ODOO_LOGIN): check ODOO_API_KEY "
            "or ODOO_PASSWORD; against the local stack leave both unset"
        )
    if isinstance(error, OdooAccessError):
        return f"{odoo} denied the technical user {settings.odoo_login!r}: {error}"
    if isinstance(error, OdooUnavailable):
        return (
            f"{odoo} did not answer ({error}): start it (the local stack: scripts/dev), or "
            "check ODOO_URL"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prefix = f"creativeflow {args.command}:"
    settings = None
    try:
        settings = _settings()
        _logging(settings)
        result: int = args.run(settings, args)
    except Refused as refused:
        print(f"{prefix} {refused}", file=sys.stderr)
        return 2
    except Exception as error:
        line = _unanswered(error, settings) if settings is not None else None
        if line is None:
            raise
        log.debug("%s", line, exc_info=True)
        print(f"{prefix} {line}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
