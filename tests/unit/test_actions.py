"""The action grammar lives in ``domain/actions.py`` alone: the job schema, the Odoo emulator, the
fake credit service and the addon (which keeps a copy, as it runs inside Odoo: held to it in
``tests/addon``) all agree with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from creativeflow.adapters.odoo.errors import OdooRejected
from creativeflow.domain.actions import PATTERN, Action, ActionKind, InvalidAction
from creativeflow.domain.credits import GenerationSpec
from creativeflow_devstack.fake_credits import FakeCredits
from creativeflow_devstack.odoo_emulator import rules

ROOT = Path(__file__).parents[2]
JOB_SCHEMA = json.loads((ROOT / "src/creativeflow/schemas/generation-job.v2.json").read_text())
JOB_SCHEMA_V1 = json.loads((ROOT / "src/creativeflow/schemas/generation-job.v1.json").read_text())
PUBLISHED_JOB_SCHEMA = json.loads((ROOT / "docs/job-message.schema.json").read_text())

VALID = ["samples", "final", "final-2", "final-10", "regeneration-1", "regeneration-23"]
INVALID = [
    "",
    "sample",
    "samples-1",
    "final-1",
    "final-0",
    "final-02",
    "regeneration",
    "regeneration-0",
    "regeneration-01",
    "Final",
    "final-2 ",
]


@pytest.mark.parametrize("text", VALID)
def test_a_valid_action_reads_and_writes_back_the_same(text: str) -> None:
    assert str(Action.parse(text)) == text


@pytest.mark.parametrize("text", INVALID)
def test_an_invalid_action_is_refused_everywhere(text: str) -> None:
    with pytest.raises(InvalidAction):
        Action.parse(text)
    with pytest.raises(rules.InvalidRequest):
        rules.check_action(text)
    assert not re.fullmatch(JOB_SCHEMA["properties"]["action"]["pattern"], text)


def test_each_next_attempt_is_the_following_name() -> None:
    assert str(Action.parse("final").following()) == "final-2"
    assert str(Action.parse("regeneration-3").following()) == "regeneration-4"
    assert Action.parse("final-7").kind is ActionKind.FINAL and Action.parse("final-7").is_final
    with pytest.raises(InvalidAction):
        Action.parse("samples").following()


def test_the_job_schema_pattern_is_the_grammar() -> None:
    assert JOB_SCHEMA["properties"]["action"]["pattern"] == f"^({PATTERN})$"
    assert JOB_SCHEMA_V1["properties"]["action"]["pattern"] == f"^({PATTERN})$"


def test_the_published_job_schema_is_the_one_the_service_validates_with() -> None:
    """``docs/job-message.schema.json`` is what n8n's authors read: it carries the same grammar,
    and is the same schema as the package's."""
    assert PUBLISHED_JOB_SCHEMA["properties"]["action"]["pattern"] == f"^({PATTERN})$"
    assert PUBLISHED_JOB_SCHEMA == JOB_SCHEMA


@pytest.mark.parametrize("text", VALID)
def test_a_job_paid_under_any_valid_action_validates_against_the_schema(text: str) -> None:
    validator = jsonschema.Draft202012Validator(JOB_SCHEMA["properties"]["action"])
    assert validator.is_valid(text)


@pytest.mark.asyncio
async def test_the_fake_credit_service_pays_final_2_and_refuses_final_1() -> None:
    credits = FakeCredits()
    credits.add_account("u", balance=100)
    spec = GenerationSpec(format="png", width=512, height=512, samples=1)
    receipt = await credits.debit("u", "r-1", "final-2", spec, "c")
    assert receipt.amount == 10
    with pytest.raises(OdooRejected):
        await credits.debit("u", "r-1", "final-1", spec, "c")
