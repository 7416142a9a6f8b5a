"""The fuzzer runs against the whole product, started exactly as the e2e tests start it: the API
under uvicorn on real PostgreSQL and RabbitMQ, the Odoo emulator and the n8n simulator."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.conftest import Stack
from tests.e2e.conftest import stack as stack  # the same fixture, for this package

# known before the schema is loaded (at import), so it can be pinned in the fuzzer's config
FUZZ_USER = f"fuzz-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="package")
def fuzz_user(stack: Stack) -> str:
    """One user with credits to spare, so fuzzed submits reach Odoo and the broker."""
    stack.emulator.add_account(FUZZ_USER, tier="pro", balance=10**9)
    return FUZZ_USER
