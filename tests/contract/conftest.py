"""The contract suite's targets and fixtures.

By default the suite starts the Odoo emulator in-process on a free port. With
``ODOO_CONTRACT_URL``, ``ODOO_CONTRACT_DB``, ``ODOO_CONTRACT_LOGIN`` and ``ODOO_CONTRACT_SECRET``
set, it runs against that real Odoo (with ``creativeflow_credits`` installed) instead. There,
fresh accounts are created through a manager's login (``ODOO_CONTRACT_MANAGER_LOGIN``,
``ODOO_CONTRACT_MANAGER_SECRET``, over XML-RPC), and the tier of the addon's rule table
(``tier_rules.json``) is created when it is missing; tests that need the emulator's powers
(fault knobs, request counts) are skipped with a reason. Every test works on fresh accounts and
request ids. Each test that talks to Odoo runs once per protocol: ``xmlrpc``, ``jsonrpc`` and
``json2`` (JSON-2 needs an API key: ``ODOO_CONTRACT_API_KEY`` when set, else
``ODOO_CONTRACT_SECRET``).

JSON-2 exists from Odoo 19 on: the suite asks the server's version first (``common.version``,
``server_version_info``) and skips every JSON-2 run below 19 with the version in the reason.
The emulator claims ``ODOO_CONTRACT_EMULATOR_VERSION`` (default 19.0, so CI runs all three
protocols; 18.0 shows what a run against Odoo 18 skips).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooConfig
from creativeflow.adapters.odoo.config import RpcProtocol
from creativeflow.domain.credits import GenerationSpec
from tests.tier_rules import TABLE, TIER

from .gateway import GatewayStub

PROTOCOLS: tuple[RpcProtocol, ...] = ("xmlrpc", "jsonrpc", "json2")
JSON2_SINCE = 19  # the first Odoo major version with /json/2
EMULATOR_VERSION = "19.0"
SERVICE = "creativeflow.credit.service"
DEBIT = f"{SERVICE}.debit"

_REAL_ODOO_VARIABLES = (
    "ODOO_CONTRACT_URL",
    "ODOO_CONTRACT_DB",
    "ODOO_CONTRACT_LOGIN",
    "ODOO_CONTRACT_SECRET",
)


@dataclass(frozen=True, slots=True)
class Credentials:
    login: str
    secret: str


class Target(Protocol):
    """An Odoo speaking the contract: the emulator, or a real server."""

    name: str
    url: str
    database: str
    orchestrator: Credentials
    emulator: Any

    def new_account(self, tier: str, balance: int) -> str: ...

    def credentials(self, protocol: RpcProtocol) -> Credentials:
        """The orchestrator's login and the secret that protocol takes (JSON-2: an API key)."""
        ...

    def password_and_api_key(self) -> tuple[str, str] | None: ...

    def auditor(self, protocol: RpcProtocol) -> Credentials | None: ...

    def close(self) -> None: ...


class EmulatorTarget:
    """The in-process emulator with its default seed, claiming ``server_version``."""

    name = "emulator"

    def __init__(self, server_version: str = EMULATOR_VERSION) -> None:
        from dataclasses import replace

        from creativeflow_devstack.odoo_emulator import OdooEmulator
        from creativeflow_devstack.odoo_emulator.seed import load_seed

        seed = load_seed()  # and the tier of the addon's rule table
        seed = replace(seed, tiers=(*seed.tiers, TIER))
        self.emulator = OdooEmulator(seed=seed, server_version=server_version)
        self.emulator.start(host="127.0.0.1", port=0)
        self.url = self.emulator.url
        self.database = self.emulator.database
        users = {user.login: user for user in self.emulator.seed.users}
        self._orchestrator = users["orchestrator"]
        self._auditor = users["auditor"]
        self.orchestrator = Credentials("orchestrator", self._orchestrator.password)

    def new_account(self, tier: str, balance: int) -> str:
        user_id = fresh_id("user")
        self.emulator.add_account(user_id, tier=tier, balance=balance)
        return user_id

    def credentials(self, protocol: RpcProtocol) -> Credentials:
        if protocol == "json2":
            return Credentials("orchestrator", self._orchestrator.api_keys[0])
        return self.orchestrator

    def password_and_api_key(self) -> tuple[str, str] | None:
        return self._orchestrator.password, self._orchestrator.api_keys[0]

    def auditor(self, protocol: RpcProtocol) -> Credentials | None:
        secret = self._auditor.api_keys[0] if protocol == "json2" else self._auditor.password
        return Credentials(self._auditor.login, secret)

    def close(self) -> None:
        self.emulator.stop()


class RealOdooTarget:
    """A real Odoo 18 with the addon, described by ``ODOO_CONTRACT_*`` variables."""

    name = "odoo"
    emulator = None

    def __init__(self, env: dict[str, str]) -> None:
        self.url = env["ODOO_CONTRACT_URL"].rstrip("/")
        self.database = env["ODOO_CONTRACT_DB"]
        self.orchestrator = Credentials(env["ODOO_CONTRACT_LOGIN"], env["ODOO_CONTRACT_SECRET"])
        self._env = env
        self._manager: OdooClient | None = None

    def new_account(self, tier: str, balance: int) -> str:
        manager = self._manager_client()
        tier_ids = manager.call("creativeflow.subscription.tier", "search", [["code", "=", tier]])
        if not tier_ids and tier == TIER.code:
            tier_ids = [
                manager.call("creativeflow.subscription.tier", "create", _table_tier(manager))
            ]
        if not tier_ids:
            pytest.skip(f"the real Odoo has no tier {tier!r}")
        user_id = fresh_id("user")
        account_id = manager.call(
            "creativeflow.credit.account",
            "create",
            {"platform_user_id": user_id, "tier_id": tier_ids[0]},
        )
        if balance:
            manager.call(
                "creativeflow.credit.account",
                "action_adjust",
                [account_id],
                balance,
                "contract suite: opening balance",
            )
        return user_id

    def credentials(self, protocol: RpcProtocol) -> Credentials:
        api_key = self._env.get("ODOO_CONTRACT_API_KEY")
        if protocol == "json2" and api_key:
            return Credentials(self.orchestrator.login, api_key)
        return self.orchestrator

    def password_and_api_key(self) -> tuple[str, str] | None:
        password = self._env.get("ODOO_CONTRACT_PASSWORD")
        api_key = self._env.get("ODOO_CONTRACT_API_KEY")
        return (password, api_key) if password and api_key else None

    def auditor(self, protocol: RpcProtocol) -> Credentials | None:
        # For json2, ODOO_CONTRACT_AUDITOR_SECRET must be one of the auditor's API keys.
        login = self._env.get("ODOO_CONTRACT_AUDITOR_LOGIN")
        secret = self._env.get("ODOO_CONTRACT_AUDITOR_SECRET")
        return Credentials(login, secret) if login and secret else None

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()

    def _manager_client(self) -> OdooClient:
        # Tests run in one thread; the manager's client is only used from it.
        if self._manager is None:
            login = self._env.get("ODOO_CONTRACT_MANAGER_LOGIN")
            secret = self._env.get("ODOO_CONTRACT_MANAGER_SECRET")
            if not login or not secret:
                pytest.skip(
                    "creating fresh accounts on a real Odoo needs ODOO_CONTRACT_MANAGER_LOGIN "
                    "and ODOO_CONTRACT_MANAGER_SECRET (a CreativeFlow credit manager)"
                )
            self._manager = OdooClient(OdooConfig(self.url, self.database, login, secret, "xmlrpc"))
        return self._manager


def _table_tier(manager: OdooClient) -> dict[str, Any]:
    """The rule table's tier as ``create`` takes it: its models are given by their codes."""
    values = dict(TABLE["tier"])
    codes = values["allowed_model_ids"]
    found = manager.call(
        "creativeflow.ai.model", "search_read", [["code", "in", codes]], ["id", "code"]
    )
    ids = {record["code"]: record["id"] for record in found}
    values["allowed_model_ids"] = [[6, 0, [ids[code] for code in codes]]]
    values["default_model_id"] = ids[values["default_model_id"]]
    return values


def fresh_id(prefix: str) -> str:
    return f"ct-{prefix}-{uuid.uuid4().hex[:16]}"


def spec(
    samples: int = 1,
    *,
    fmt: str = "png",
    width: int = 512,
    height: int = 512,
    model: str | None = None,
    requests_in_flight: int | None = None,
) -> GenerationSpec:
    return GenerationSpec(
        format=fmt,
        width=width,
        height=height,
        samples=samples,
        model=model,
        requests_in_flight=requests_in_flight,
    )


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    configured = [name for name in _REAL_ODOO_VARIABLES if os.environ.get(name)]
    chosen: Target
    if configured:
        missing = sorted(set(_REAL_ODOO_VARIABLES) - set(configured))
        if missing:
            pytest.exit(f"contract suite: {', '.join(missing)} missing for a real Odoo", 2)
        chosen = RealOdooTarget(dict(os.environ))
    else:
        chosen = EmulatorTarget(os.environ.get("ODOO_CONTRACT_EMULATOR_VERSION", EMULATOR_VERSION))
    try:
        yield chosen
    finally:
        chosen.close()


def server_version(url: str) -> tuple[str, list[Any]]:
    """``server_version`` and ``server_version_info`` of ``common.version`` (no login needed)."""
    import xmlrpc.client

    with xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common") as common:
        info = common.version()
    return str(info.get("server_version", "?")), list(info.get("server_version_info") or [])


def json2_skip_reason(url: str) -> str | None:
    """None when the server's version has JSON-2 (Odoo 19 or later), else why its JSON-2 runs
    are skipped. Odoo 18 answers ``/json/2/...`` with a 303 to its login page."""
    version, info = server_version(url)
    major = info[0] if info and isinstance(info[0], int) else None
    if major is not None and major >= JSON2_SINCE:
        return None
    return (
        f"Odoo {version} at {url} has no JSON-2 API: /json/2 arrived in Odoo {JSON2_SINCE} "
        "(Odoo 18 redirects it to the login page); its xmlrpc and jsonrpc runs are the contract"
    )


@pytest.fixture(scope="session")
def json2_available(target: Target) -> str | None:
    """None when the target serves JSON-2, else why the JSON-2 runs are skipped."""
    return json2_skip_reason(target.url)


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> RpcProtocol:
    value: RpcProtocol = request.param
    return value


@pytest.fixture(autouse=True)
def _json2_needs_odoo_19(request: pytest.FixtureRequest) -> None:
    """Every run on ``json2``, by this fixture or by a test's own ``parametrize``, is skipped
    where the target has no JSON-2."""
    if "protocol" not in request.fixturenames or request.getfixturevalue("protocol") != "json2":
        return
    skipped = request.getfixturevalue("json2_available")
    if skipped:
        pytest.skip(skipped)


@pytest.fixture
def make_config(target: Target, protocol: RpcProtocol) -> Callable[..., OdooConfig]:
    """An ``OdooConfig`` for the target and protocol; keyword arguments override fields."""

    def make(**overrides: Any) -> OdooConfig:
        credentials = target.credentials(protocol)
        fields: dict[str, Any] = {
            "url": target.url,
            "database": target.database,
            "login": credentials.login,
            "secret": credentials.secret,
            "protocol": protocol,
            "backoff_base": 0.01,
            "backoff_max": 0.05,
        }
        fields.update(overrides)
        return OdooConfig(**fields)

    return make


@pytest.fixture
def make_client(make_config: Callable[..., OdooConfig]) -> Iterator[Callable[..., OdooClient]]:
    """Clients closed at teardown; ``sleep=`` and ``transport=`` go to the client."""
    clients: list[OdooClient] = []

    def make(**overrides: Any) -> OdooClient:
        client_options = {
            key: overrides.pop(key) for key in ("sleep", "transport") if key in overrides
        }
        client = OdooClient(make_config(**overrides), **client_options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., OdooClient]) -> OdooClient:
    return make_client()


@pytest.fixture
def new_account(target: Target) -> Callable[..., str]:
    """``new_account(tier="pro", balance=100)``: a fresh platform user id with that account."""

    def make(tier: str = "pro", balance: int = 100) -> str:
        return target.new_account(tier, balance)

    return make


@pytest.fixture
def emulator(target: Target) -> Iterator[Any]:
    """The emulator, for tests that need its fault knobs or request counts; faults cleared after."""
    if target.emulator is None:
        pytest.skip("needs the emulator's fault knobs and request counters")
    yield target.emulator
    target.emulator.faults.clear()


@pytest.fixture
def gateway(target: Target) -> Iterator[GatewayStub]:
    """A forwarding HTTP proxy in front of the target that can fail chosen requests."""
    stub = GatewayStub(target.url)
    try:
        yield stub
    finally:
        stub.stop()
