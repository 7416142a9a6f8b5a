"""Run the emulator in the foreground until SIGINT or SIGTERM.

    python -m creativeflow_devstack.odoo_emulator --host 127.0.0.1 --port 8069 --seed seed.json

One log line per request (never an argument, so never a password or API key).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .emulator import OdooEmulator
from .seed import SeedError, load_seed
from .versions import DEFAULT_VERSION, VersionError

logger = logging.getLogger("creativeflow_devstack.odoo_emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m creativeflow_devstack.odoo_emulator",
        description="An Odoo emulator (XML-RPC, JSON-RPC; JSON-2 as Odoo 19) for the CreativeFlow "
        "credits.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8069, help="port (0 picks a free one)")
    parser.add_argument("--seed", default=None, help="seed JSON file (default: the package's)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every RPC")
    parser.add_argument(
        "--login-pbkdf2-rounds",
        type=int,
        default=None,
        help="pbkdf2 rounds paid per login, like Odoo's 600000 (overrides the seed)",
    )
    parser.add_argument(
        "--server-version",
        default=DEFAULT_VERSION,
        help=f"the Odoo version it claims (default {DEFAULT_VERSION}); 19.0 or later serves JSON-2",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        seed = load_seed(options.seed)
    except SeedError as exc:
        logger.error("%s", exc)
        return 2
    if options.login_pbkdf2_rounds is not None:
        seed = dataclasses.replace(seed, login_pbkdf2_rounds=max(0, options.login_pbkdf2_rounds))
    try:
        emulator = OdooEmulator(seed=seed, server_version=options.server_version)
    except VersionError as exc:
        logger.error("%s", exc)
        return 2
    emulator.faults.latency = max(0.0, options.latency)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        emulator.start(options.host, options.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", options.host, options.port, exc)
        return 1
    logger.info(
        "Odoo emulator (%s) on %s, database %r",
        emulator.server_version,
        emulator.url,
        emulator.database,
    )
    try:
        while not stopping.wait(timeout=0.5):
            pass
    finally:
        emulator.stop()
        logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
