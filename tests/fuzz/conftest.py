"""The fuzzer runs against the whole product, started exactly as the e2e tests start it: the API
under uvicorn on real PostgreSQL and RabbitMQ, the Odoo emulator and the n8n simulator."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import strategies as st

from tests.e2e.conftest import Stack
from tests.e2e.conftest import stack as stack  # the same fixture, for this package

# What text fields must survive: NUL (PostgreSQL cannot store it), lone surrogates (not valid
# Unicode), C0 and C1 controls, bidirectional overrides, a byte-order mark, non-breaking and
# full-width look-alikes. Mixed into ordinary text so they land anywhere in a value.
HOSTILE_CHARACTERS = [
    "\x00",
    "\ud800",
    "\udfff",
    "\x1b",
    "\x07",
    "\x7f",
    "\x85",
    "\x9f",
    "\u202e",
    "\ufeff",
    "\u00a0",
    "\uff41",
]


def hostile_text(max_size: int) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(codec="utf-8") | st.sampled_from(HOSTILE_CHARACTERS),
        max_size=max_size,
    )


# known before the schema is loaded (at import), so it can be pinned in the fuzzer's config
FUZZ_USER = f"fuzz-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="package")
def fuzz_user(stack: Stack) -> str:
    """One user with credits to spare, so fuzzed submits reach Odoo and the broker."""
    stack.emulator.add_account(FUZZ_USER, tier="pro", balance=10**9)
    return FUZZ_USER
