"""The addon's checks of ``record_generated_asset``'s struct, run without Odoo, against the
emulator's (which ``FakeCredits`` shares): both must refuse the same structs with the same
detail, so the contract suite on the emulator says what a real Odoo answers.

``models/credit_service.py`` is executed with stand-ins for the few ``odoo`` names it imports at
module level; only its pure functions are called.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from creativeflow_devstack.odoo_emulator import rules
from creativeflow_devstack.odoo_emulator.rules import InvalidRequest

SERVICE_SOURCE = (
    Path(__file__).resolve().parents[2]
    / "odoo_contracts"
    / "creativeflow_credits"
    / "models"
    / "credit_service.py"
)


def _stand_in_odoo() -> dict[str, types.ModuleType]:
    odoo = types.ModuleType("odoo")
    api = types.ModuleType("odoo.api")
    api.model = lambda function: function  # type: ignore[attr-defined]
    fields = types.ModuleType("odoo.fields")
    fields.Datetime = type("Datetime", (), {"to_string": staticmethod(str)})  # type: ignore[attr-defined]
    models = types.ModuleType("odoo.models")
    models.AbstractModel = type("AbstractModel", (), {})  # type: ignore[attr-defined]
    exceptions = types.ModuleType("odoo.exceptions")
    exceptions.AccessError = type("AccessError", (Exception,), {})  # type: ignore[attr-defined]
    odoo.api, odoo.fields, odoo.models = api, fields, models  # type: ignore[attr-defined]
    return {
        "odoo": odoo,
        "odoo.api": api,
        "odoo.fields": fields,
        "odoo.models": models,
        "odoo.exceptions": exceptions,
    }


@pytest.fixture(scope="module")
def addon_service() -> Iterator[dict[str, Any]]:
    """The module's namespace, executed with stand-ins for ``odoo``."""
    saved = {name: sys.modules.get(name) for name in _stand_in_odoo()}
    sys.modules.update(_stand_in_odoo())
    try:
        namespace: dict[str, Any] = {"__name__": "credit_service"}
        exec(
            compile(SERVICE_SOURCE.read_text(encoding="utf-8"), str(SERVICE_SOURCE), "exec"),
            namespace,
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    yield namespace


@pytest.fixture(scope="module")
def addon_asset_error(addon_service: dict[str, Any]) -> Callable[[object], str | None]:
    error: Callable[[object], str | None] = addon_service["asset_error"]
    return error


def emulator_asset_error(asset: object) -> str | None:
    try:
        rules.parse_asset(asset)
    except InvalidRequest as refused:
        return refused.detail
    return None


VALID: dict[str, Any] = {
    "request_id": "r-1",
    "platform_user_id": "u-1",
    "storage_key": "assets/u-1/r-1/final.png",
    "format": "png",
    "width": 2048,
    "height": 1536,
    "checksum_sha256": "0123456789abcdef" * 4,
    "byte_size": 5_242_880,
    "debit_actions": ["samples", "regeneration-1", "final"],
}
WITHOUT_SIZE = {key: value for key, value in VALID.items() if key != "byte_size"}
CASES: list[object] = [
    VALID,
    {**VALID, "debit_actions": ["final-2"]},
    {**VALID, "format": "webp", "width": 1, "height": 2_147_483_647},
    {**VALID, "storage_key": "k" * 1024, "request_id": "r" * 255},
    None,
    ["r-1"],
    "r-1",
    WITHOUT_SIZE,
    {},
    {**VALID, "resolution": "2048x1536"},
    {**VALID, "request_id": ""},
    {**VALID, "request_id": "   "},
    {**VALID, "request_id": "r" * 256},
    {**VALID, "request_id": "r\x00"},
    {**VALID, "platform_user_id": 42},
    {**VALID, "platform_user_id": False},
    {**VALID, "storage_key": "a\nb"},
    {**VALID, "storage_key": "a\x7fb"},
    {**VALID, "storage_key": "a\x85b"},
    {**VALID, "storage_key": "k" * 1025},
    {**VALID, "format": "PNG"},
    {**VALID, "format": ""},
    {**VALID, "format": "p" * 17},
    {**VALID, "format": "image/png"},
    {**VALID, "format": 3},
    {**VALID, "width": 0},
    {**VALID, "height": -1},
    {**VALID, "byte_size": 2_147_483_648},
    {**VALID, "width": True},
    {**VALID, "width": 2048.0},
    {**VALID, "height": "1536"},
    {**VALID, "checksum_sha256": "A" * 64},
    {**VALID, "checksum_sha256": "a" * 63},
    {**VALID, "checksum_sha256": "a" * 65},
    {**VALID, "checksum_sha256": "g" * 64},
    {**VALID, "checksum_sha256": None},
    {**VALID, "debit_actions": []},
    {**VALID, "debit_actions": "final"},
    {**VALID, "debit_actions": ["final", "final"]},
    {**VALID, "debit_actions": ["final", "bogus"]},
    {**VALID, "debit_actions": ["final-1"]},
    {**VALID, "debit_actions": ["regeneration-01"]},
    {**VALID, "debit_actions": [7]},
    {**VALID, "debit_actions": [f"regeneration-{n}" for n in range(1, 101)]},
    {**VALID, "debit_actions": [f"regeneration-{n}" for n in range(1, 102)]},
    {**VALID, "width": 0, "format": "PNG"},  # the first failing rule is the one named
]


@pytest.mark.parametrize("asset", CASES, ids=[f"case-{n}" for n in range(len(CASES))])
def test_the_addon_and_the_emulator_refuse_the_same_structs_alike(
    addon_asset_error: Callable[[object], str | None], asset: object
) -> None:
    assert addon_asset_error(asset) == emulator_asset_error(asset)


def test_the_cases_hold_valid_and_refused_structs(
    addon_asset_error: Callable[[object], str | None],
) -> None:
    verdicts = [addon_asset_error(asset) is None for asset in CASES]
    assert verdicts[:4] == [True] * 4
    assert verdicts.count(True) == 5  # the four above and a hundred distinct actions


class _Entries:
    """The few recordset methods ``asset_values`` calls on ``ledger_entry_ids``."""

    def __init__(self, actions: list[str]) -> None:
        self.actions = actions
        self.ids = list(range(1, len(actions) + 1))

    def sorted(self, _key: str) -> _Entries:
        return self

    def mapped(self, _name: str) -> list[str]:
        return list(self.actions)


def _recorded(asset: dict[str, Any]) -> types.SimpleNamespace:
    """A ``creativeflow.generated.asset`` record holding ``asset``'s values."""
    return types.SimpleNamespace(
        id=1,
        request_id=asset["request_id"],
        platform_user_id=asset["platform_user_id"],
        storage_key=asset["storage_key"],
        format=asset["format"],
        width=asset["width"],
        height=asset["height"],
        checksum=asset["checksum_sha256"],
        byte_size=asset["byte_size"],
        ledger_entry_ids=_Entries(asset["debit_actions"]),
        create_date="2026-11-21 13:09:02",
    )


@pytest.mark.parametrize(
    ("changes", "differences"),
    [
        ({}, []),
        ({"debit_actions": ["final", "regeneration-1", "samples"]}, []),
        ({"debit_actions": ["final"]}, ["debit_actions"]),
        (
            {"checksum_sha256": "f" * 64, "storage_key": "elsewhere.png"},
            ["storage_key", "checksum_sha256"],
        ),
        ({"platform_user_id": "u-2"}, ["platform_user_id"]),
        (
            {"byte_size": 1, "format": "jpeg", "width": 1, "height": 1},
            ["format", "width", "height", "byte_size"],
        ),
    ],
)
def test_the_addon_and_the_emulator_name_the_same_differences(
    addon_service: dict[str, Any], changes: dict[str, Any], differences: list[str]
) -> None:
    other = {**VALID, **changes}

    addon = addon_service["asset_differences"](_recorded(VALID), other)
    emulator = rules.parse_asset(VALID).differences(rules.parse_asset(other))

    assert addon == emulator == differences
