"""``record_generated_asset`` through the adapter, on every protocol: the final asset of a
request is recorded once with the debits that paid for it, and anything else is refused."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from creativeflow.adapters.odoo import OdooClient, OdooOutcomeUnknown, OdooRejected
from creativeflow.domain.errors import CreditOutcomeUnknown
from creativeflow.domain.generated_assets import GeneratedAsset

from .conftest import SERVICE, fresh_id, spec

NewAccount = Callable[..., str]
MakeClient = Callable[..., OdooClient]
RECORD = f"{SERVICE}.record_generated_asset"


def asset_of(user: str, request_id: str, *actions: str, **changes: Any) -> GeneratedAsset:
    asset = GeneratedAsset(
        request_id=request_id,
        user_id=user,
        storage_key=f"assets/{user}/{request_id}/final.png",
        format="png",
        width=1024,
        height=768,
        checksum_sha256=hashlib.sha256(request_id.encode()).hexdigest(),
        byte_size=1_234_567,
        debit_actions=actions or ("samples", "final"),
    )
    return dataclasses.replace(asset, **changes)


def paid_request(client: OdooClient, user: str, *actions: str) -> tuple[str, list[int]]:
    """A fresh request of ``user`` debited for each action; its id and the entries' ids."""
    request_id = fresh_id("req")
    entry_ids = [
        client.debit(user, request_id, action, spec(samples=2), fresh_id("corr")).entry_id
        for action in actions
    ]
    return request_id, entry_ids


def refused(call: Callable[[], object]) -> OdooRejected:
    with pytest.raises(OdooRejected) as raised:
        call()
    return raised.value


def test_an_asset_is_recorded_once_with_the_debits_that_paid_for_it(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(balance=100)
    request_id, entry_ids = paid_request(client, user, "samples", "regeneration-1", "final")
    asset = asset_of(user, request_id, "final", "samples", "regeneration-1")

    first = client.record_generated_asset(asset)
    again = client.record_generated_asset(asset)
    reordered = client.record_generated_asset(
        dataclasses.replace(asset, debit_actions=("samples", "regeneration-1", "final"))
    )

    assert first.created is True
    assert first.ledger_entry_ids == tuple(sorted(entry_ids))
    assert (again.odoo_id, again.created, again.ledger_entry_ids) == (
        first.odoo_id,
        False,
        first.ledger_entry_ids,
    )
    assert (reordered.odoo_id, reordered.created) == (first.odoo_id, False)
    assert client.get_entitlements(user).balance == 100 - (2 * 2 + 2 * 1 + 10)


def test_the_raw_answer_describes_the_recorded_asset(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(balance=100)
    request_id, entry_ids = paid_request(client, user, "samples", "final")
    asset = asset_of(user, request_id)

    answer = client.call(SERVICE, "record_generated_asset", asset.as_odoo_asset())

    recorded_at = answer.pop("recorded_at")
    assert isinstance(recorded_at, str) and len(recorded_at) == len("YYYY-MM-DD HH:MM:SS")
    assert isinstance(answer.pop("asset_id"), int)
    assert answer == {
        "ok": True,
        "code": "recorded",
        "created": True,
        "request_id": request_id,
        "user_id": user,
        "storage_key": asset.storage_key,
        "format": "png",
        "width": 1024,
        "height": 768,
        "checksum_sha256": asset.checksum_sha256,
        "byte_size": 1_234_567,
        "debit_actions": ["final", "samples"],
        "ledger_entry_ids": sorted(entry_ids),
    }


def test_other_values_for_a_recorded_request_are_refused_and_change_nothing(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")
    asset = asset_of(user, request_id)
    recorded = client.record_generated_asset(asset)

    conflict = refused(
        lambda: client.record_generated_asset(
            dataclasses.replace(asset, storage_key="elsewhere.png", checksum_sha256="0" * 64)
        )
    )
    fewer_debits = refused(
        lambda: client.record_generated_asset(dataclasses.replace(asset, debit_actions=("final",)))
    )

    assert conflict.code == "asset_conflict"
    assert conflict.figures["differences"] == ["storage_key", "checksum_sha256"]
    assert fewer_debits.figures["differences"] == ["debit_actions"]
    replay = client.record_generated_asset(asset)
    assert (replay.odoo_id, replay.created) == (recorded.odoo_id, False)


def test_another_user_cannot_record_a_recorded_request(
    client: OdooClient, new_account: NewAccount
) -> None:
    user, other = new_account(balance=100), new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")
    client.record_generated_asset(asset_of(user, request_id))

    conflict = refused(
        lambda: client.record_generated_asset(asset_of(user, request_id, user_id=other))
    )

    assert conflict.code == "asset_conflict"
    assert conflict.figures["differences"] == ["platform_user_id"]


def test_an_unknown_user_is_refused(client: OdooClient, new_account: NewAccount) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")

    unknown = refused(
        lambda: client.record_generated_asset(
            asset_of(user, request_id, user_id=fresh_id("nobody"))
        )
    )

    assert unknown.code == "unknown_account"
    # nothing was recorded: the request's own user records it afterwards
    assert client.record_generated_asset(asset_of(user, request_id)).created is True


def test_debits_the_request_does_not_have_are_refused(
    client: OdooClient, new_account: NewAccount
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples")

    missing = refused(
        lambda: client.record_generated_asset(
            asset_of(user, request_id, "samples", "regeneration-2", "final")
        )
    )
    never_paid = refused(
        lambda: client.record_generated_asset(asset_of(user, fresh_id("req"), "final"))
    )

    assert missing.code == "unknown_debit"
    assert missing.figures["actions"] == ["final", "regeneration-2"]
    assert never_paid.code == "unknown_debit"
    assert client.record_generated_asset(asset_of(user, request_id, "samples")).created is True


def test_debits_of_another_account_are_refused(client: OdooClient, new_account: NewAccount) -> None:
    payer, other = new_account(balance=100), new_account(balance=100)
    request_id, _ = paid_request(client, payer, "samples", "final")

    conflict = refused(lambda: client.record_generated_asset(asset_of(other, request_id)))

    assert conflict.code == "request_conflict"
    assert client.record_generated_asset(asset_of(payer, request_id)).created is True


@pytest.mark.parametrize(
    "changes",
    [
        {"checksum_sha256": "A" * 64},
        {"checksum_sha256": "ab" * 31},
        {"checksum_sha256": "g" * 64},
        {"format": "PNG"},
        {"format": ""},
        {"format": "p" * 17},
        {"width": 0},
        {"height": -1},
        {"byte_size": 0},
        {"width": True},
        {"storage_key": ""},
        {"storage_key": "   "},
        {"storage_key": "a\nb.png"},
        {"storage_key": "k" * 1025},
        {"user_id": "u" * 256},
        {"debit_actions": ()},
        {"debit_actions": ("final", "final")},
        {"debit_actions": ("final", "bogus")},
        {"debit_actions": ("final-1",)},
    ],
    ids=lambda changes: ",".join(f"{key}={value!r}"[:40] for key, value in changes.items()),
)
def test_values_that_break_the_rules_are_invalid_requests(
    client: OdooClient, new_account: NewAccount, changes: dict[str, Any]
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")

    invalid = refused(lambda: client.record_generated_asset(asset_of(user, request_id, **changes)))

    assert invalid.code == "invalid_request"
    assert isinstance(invalid.odoo_detail, str) and invalid.odoo_detail
    assert client.record_generated_asset(asset_of(user, request_id)).created is True


@pytest.mark.parametrize(
    "mangle",
    [
        lambda asset: {key: value for key, value in asset.items() if key != "byte_size"},
        lambda asset: {**asset, "resolution": "1024x768"},
        lambda asset: {**asset, "width": "1024"},
        lambda asset: {**asset, "debit_actions": "final"},
        lambda asset: [asset],
    ],
    ids=["missing-key", "unknown-key", "width-as-text", "actions-as-text", "not-a-struct"],
)
def test_a_struct_that_is_not_the_contracts_is_an_invalid_request(
    client: OdooClient, new_account: NewAccount, mangle: Callable[[dict[str, Any]], Any]
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")

    answer = client.call(
        SERVICE, "record_generated_asset", mangle(asset_of(user, request_id).as_odoo_asset())
    )

    assert (answer["ok"], answer["code"]) == (False, "invalid_request")
    assert isinstance(answer["detail"], str)


def test_a_lost_reply_is_an_outcome_unknown_then_the_recorded_asset(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")
    asset = asset_of(user, request_id)
    once = make_client(max_attempts=1)
    emulator.faults.lose_reply_next(1, model_method=RECORD)

    with pytest.raises(OdooOutcomeUnknown) as unknown:
        once.record_generated_asset(asset)

    assert isinstance(unknown.value, CreditOutcomeUnknown)
    again = once.record_generated_asset(asset)
    assert again.created is False
    assert [a["request_id"] for a in emulator.assets()].count(request_id) == 1


def test_a_lost_reply_is_retried_into_the_recorded_asset(
    emulator: Any, make_client: MakeClient, new_account: NewAccount, client: OdooClient
) -> None:
    user = new_account(balance=100)
    request_id, _ = paid_request(client, user, "samples", "final")
    retrying = make_client(max_attempts=3, sleep=lambda _seconds: None)
    retrying.authenticate()
    emulator.faults.lose_reply_next(1, model_method=RECORD)

    recorded = retrying.record_generated_asset(asset_of(user, request_id))

    assert recorded.created is False  # the lost try recorded it; the retry found it
