"""JSON-2 needs Odoo 19: the suite reads the server's version and skips JSON-2 below it, and the
adapter configured for JSON-2 against an Odoo 18 says what is wrong and how to fix it.

Both sides run against emulators claiming Odoo 18.0 and 19.0, which answer ``/json/2`` as those
versions do (18.0: a 303 to the login page), whatever the suite's own target is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooConfig, OdooUnavailable
from creativeflow_devstack.odoo_emulator import OdooEmulator

from .conftest import fresh_id, json2_skip_reason, spec

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def odoo_18() -> Iterator[OdooEmulator]:
    with OdooEmulator(server_version="18.0") as emulator:
        yield emulator


def _orchestrator(emulator: OdooEmulator) -> tuple[str, str]:
    user = next(u for u in emulator.seed.users if u.login == "orchestrator")
    return user.password, user.api_keys[0]


def test_the_suite_skips_json2_below_odoo_19_with_the_version_in_the_reason(
    odoo_18: OdooEmulator,
) -> None:
    reason = json2_skip_reason(odoo_18.url)
    assert reason is not None
    assert f"Odoo 18.0 at {odoo_18.url} has no JSON-2 API" in reason
    with OdooEmulator(server_version="19.0") as odoo_19:
        assert json2_skip_reason(odoo_19.url) is None


def test_json2_configured_against_odoo_18_is_a_clear_error_and_debits_nothing(
    odoo_18: OdooEmulator,
) -> None:
    password, api_key = _orchestrator(odoo_18)
    odoo_18.add_account("u-18", tier="pro", balance=100)
    request_id = fresh_id("req")
    config = OdooConfig(odoo_18.url, odoo_18.database, "orchestrator", api_key, "json2")
    with OdooClient(config) as client, pytest.raises(OdooUnavailable) as refused:
        client.debit("u-18", request_id, "samples", spec(2), "c-18")
    message = str(refused.value)
    assert "no JSON-2 API" in message and "ODOO_PROTOCOL=xmlrpc or jsonrpc" in message
    assert odoo_18.request_count(path="/json/2/creativeflow.credit.service/debit") == 1  # no retry
    assert odoo_18.balance("u-18") == 100 and not odoo_18.ledger()
    # the same server over XML-RPC is the contract
    xmlrpc = OdooConfig(odoo_18.url, odoo_18.database, "orchestrator", password, "xmlrpc")
    with OdooClient(xmlrpc) as client:
        assert client.debit("u-18", request_id, "samples", spec(2), "c-18").amount > 0


def test_a_run_against_odoo_18_skips_every_json2_test_and_runs_the_others() -> None:
    """The suite itself, pointed at an emulator claiming 18.0, as it would meet a real Odoo 18."""
    env = {**os.environ, "ODOO_CONTRACT_EMULATOR_VERSION": "18.0"}
    for name in [
        n for n in env if n.startswith("ODOO_CONTRACT_") and n != "ODOO_CONTRACT_EMULATOR_VERSION"
    ]:
        env.pop(name)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/contract/test_credit_rules.py::test_entitlements_of_a_pro_account",
            # parametrized on json2 by the test itself
            "tests/contract/test_budgets.py::test_json2_a_new_client_debits_in_one_request_without_logging_in",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed, 2 skipped" in run.stdout, run.stdout
    assert "has no JSON-2 API: /json/2 arrived in Odoo 19" in run.stdout, run.stdout
