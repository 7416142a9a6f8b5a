"""``OdooEmulator``: the Python face that tests and the local stack hold.

It wires the parts (seed, ledger, users, models, RPC services, fault knobs, counters, control
face, HTTP listener) and nothing else; each instance owns all of its state, so several emulators
can run side by side in one test session.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from .app import EmulatorApp
from .auth import UserDirectory
from .control import ControlFace
from .counters import RequestCounter
from .faults import FaultKnobs
from .json2 import Json2Endpoint
from .ledger import Clock, CreditLedger, utc_now
from .models import build_registry
from .persistence import StateFile
from .rules import Tier
from .seed import Seed, load_seed
from .server import HttpListener
from .services import RpcServices
from .versions import DEFAULT_VERSION, ServerVersion

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


class OdooEmulator:
    """An Odoo stand-in speaking XML-RPC and JSON-RPC over real HTTP, and JSON-2 when it claims
    Odoo 19 or later (``server_version``, "18.0" by default: the addon's version)."""

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        clock: Clock | None = None,
        server_version: str = DEFAULT_VERSION,
    ) -> None:
        self._version = ServerVersion.parse(server_version)
        self._seed = seed if seed is not None else load_seed()
        self._ledger = CreditLedger(self._seed.tiers, clock or utc_now)
        for account in self._seed.accounts:
            self._ledger.add_account(account.platform_user_id, account.tier, account.balance)
        self._counter = RequestCounter()
        self._faults = FaultKnobs(connection_switch=self._switch_connections)
        directory = UserDirectory(
            self._seed.database, self._seed.users, self._seed.login_pbkdf2_rounds
        )
        registry = build_registry(self._ledger)
        app = EmulatorApp(
            RpcServices(directory, registry, self._version),
            self._faults,
            self._counter,
            ControlFace(
                ledger=self._ledger,
                counter=self._counter,
                faults=self._faults,
                database=self._seed.database,
            ),
            Json2Endpoint(directory, registry),
            self._version,
        )
        self._listener = HttpListener(app)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve in background threads; ``port=0`` picks a free port (see ``port``)."""
        self._listener.open(host, port)
        if self._faults.refusing:
            self._listener.pause()
        return self

    def stop(self) -> None:
        self._faults.close()
        self._listener.close()

    # -- state between runs (the local stack) ----------------------------------------------------

    _state: StateFile | None = None

    def load_state(self, path: Path) -> bool:
        """Take accounts and ledger back from ``path`` (``persistence.py``); False when absent.
        ``StateUnreadable`` when the file holds no state this emulator can read."""
        self._state = StateFile(path)
        return self._state.load(self._ledger)

    def save_state(self, path: Path) -> bool:
        """Write accounts and ledger to ``path`` atomically; False when nothing changed."""
        if self._state is None or self._state.path != path:
            self._state = StateFile(path)
        return self._state.save(self._ledger)

    def __enter__(self) -> Self:
        if self._listener.address is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where it is ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._bound()[0]

    @property
    def port(self) -> int:
        return self._bound()[1]

    @property
    def url(self) -> str:
        host, port = self._bound()
        shown = "127.0.0.1" if host in _WILDCARD_HOSTS else host
        return f"http://{shown}:{port}"

    @property
    def database(self) -> str:
        return self._seed.database

    @property
    def server_version(self) -> str:
        """The Odoo version it claims, e.g. "18.0"; JSON-2 is served from "19.0" on."""
        return str(self._version)

    @property
    def seed(self) -> Seed:
        return self._seed

    # -- state, for tests ----------------------------------------------------------------------

    @property
    def faults(self) -> FaultKnobs:
        return self._faults

    def add_account(self, platform_user_id: str, tier: str, balance: int = 0) -> None:
        """Open an account (no ledger entry for the opening balance)."""
        self._ledger.add_account(platform_user_id, tier, balance)

    def set_tier(self, tier: Tier) -> None:
        """Add a tier or replace the one with its code (as a manager edits one in Odoo)."""
        self._ledger.set_tier(tier)

    def tier(self, code: str) -> Tier:
        """The tier with this code; ``KeyError`` for an unknown one."""
        return self._ledger.tier(code)

    def balance(self, platform_user_id: str) -> int:
        """The account's balance; ``KeyError`` for an unknown account."""
        return self._ledger.balance(platform_user_id)

    def accounts(self) -> list[dict[str, Any]]:
        return self._ledger.accounts()

    def ledger(self) -> list[dict[str, Any]]:
        """Every ledger entry, oldest first, in the contract's entry shape."""
        return self._ledger.entries()

    def assets(self) -> list[dict[str, Any]]:
        """Every recorded generated asset, in ``record_generated_asset``'s answer shape."""
        return self._ledger.assets()

    def request_count(
        self,
        path: str | None = None,
        service_method: str | None = None,
        model_method: str | None = None,
    ) -> int:
        """RPC-side HTTP requests matching every filter given (all of them when none is)."""
        return self._counter.count(path, service_method, model_method)

    def reset_counters(self) -> None:
        self._counter.reset()

    # -- internals -----------------------------------------------------------------------------

    def _bound(self) -> tuple[str, int]:
        address = self._listener.address
        if address is None:
            raise RuntimeError("the emulator is not started")
        return address

    def _switch_connections(self, refuse: bool) -> None:
        if refuse:
            self._listener.pause()
        else:
            self._listener.resume()
