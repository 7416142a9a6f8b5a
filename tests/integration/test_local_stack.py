"""The local stack's promises to a developer: the emulated Odoo keeps its accounts and ledger
between runs (so reconciliation against the kept tracking database stays clean), ``--reset``
empties both together, and a port already taken is refused before anything starts, naming the
setting to change."""

from __future__ import annotations

import socket
import uuid
import xmlrpc.client
from pathlib import Path

import pytest
from pydantic import SecretStr

from creativeflow.adapters.tracking.databases import ensure_database
from creativeflow.devstack import stack
from creativeflow.devstack.odoo_emulator import OdooEmulator
from creativeflow.listening import PortInUse
from creativeflow.settings import Settings
from tests.conftest import POSTGRES_ADMIN_URL, drop_database

PNG = {"format": "png", "width": 512, "height": 512, "samples": 2, "advanced_model": False}


def _debit(emulator: OdooEmulator, user: str, request_id: str) -> dict[str, object]:
    with xmlrpc.client.ServerProxy(f"{emulator.url}/xmlrpc/2/object") as models:
        return models.execute_kw(  # type: ignore[no-any-return]
            emulator.database,
            2,
            stack.EMULATOR_PASSWORD,
            "creativeflow.credit.service",
            "debit",
            [user, request_id, "samples", PNG],
        )


def test_the_emulated_ledger_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "odoo-emulator.json"
    with OdooEmulator().start() as first:
        first.add_account("dev-1", tier="pro", balance=50)
        receipt = _debit(first, "dev-1", "r-1")
        first.save_state(state)
    with OdooEmulator() as second:
        assert second.load_state(state)
        assert second.balance("dev-1") == 50 - receipt["amount"]  # type: ignore[operator]
        assert [(e["request_id"], e["operation"]) for e in second.ledger()] == [("r-1", "debit")]
        # the same debit is still a replay: the restart did not forget what was charged
        again = _debit(second, "dev-1", "r-1")
        assert again["replay"] is True and again["entry_id"] == receipt["entry_id"]


def test_a_fresh_emulator_has_no_state_to_load(tmp_path: Path) -> None:
    assert OdooEmulator().load_state(tmp_path / "absent.json") is False


def test_reset_drops_the_tracking_database_and_the_emulator_state_together(
    tmp_path: Path,
) -> None:
    name = f"cf_reset_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    state = tmp_path / "odoo-emulator.json"
    state.write_text("{}")
    try:
        assert ensure_database(url) is True
        settings = Settings(_env_file=None, environment="test", database_url_value=url)  # type: ignore[call-arg]
        stack._reset(settings, state)
        assert not state.exists()
        assert ensure_database(url) is True  # it was gone: created again
    finally:
        drop_database(name)


@pytest.mark.parametrize(
    ("setting", "changes"),
    [
        ("API_PORT", {}),
        ("ODOO_URL", {"odoo_url": "http://127.0.0.1:{port}"}),
        ("NOTIFICATION_SERVICE_URL", {"notification_service_url": "http://127.0.0.1:{port}"}),
    ],
)
def test_a_port_in_use_is_refused_naming_its_setting(setting: str, changes: dict[str, str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        values = {k: v.format(port=taken) for k, v in changes.items()}
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="test",
            api_host="127.0.0.1",
            odoo_password=SecretStr("x"),
            **values,
        )
        api_port = taken if setting == "API_PORT" else 0
        with pytest.raises(PortInUse) as refused:
            stack._check_ports(settings, api_port, stack.LocalStackOptions())
    assert f"port {taken} is in use" in str(refused.value)
    assert setting in str(refused.value)
