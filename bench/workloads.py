"""What the benchmark sends: submits, callbacks (signed as n8n signs them) and selections.

Bodies are encoded, and callbacks signed, before a phase starts, so the load generator spends
its time sending, not building JSON or HMACs.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from bench.load import Operation
from bench.stack import (
    ACCOUNTS_PER_PREFIX,
    CALLBACK_SECRET,
    GATEWAY_SECRET,
    SERVICE_USER_PREFIX,
    BenchStack,
    service_user,
)
from creativeflow.webhook_signature import signed_headers

GENERATIONS = "/api/v1/generations"
CALLBACKS = "/api/v1/callbacks/n8n"

# a realistic request without any n8n simulator trigger ([hold], [fail:...], [duplicate])
SUBMIT_BODY: dict[str, Any] = {
    "prompt": "a lighthouse at dawn, watercolour, soft morning light over a calm sea",
    "format": "png",
    "width": 1024,
    "height": 1024,
    "samples": 3,
    "style_guidance": "soft light, muted palette",
    "brand_elements": {"colors": ["#FF6600", "#003366"], "fonts": ["Inter"]},
    "project_id": "spring-campaign",
}
SUBMIT_BYTES = json.dumps(SUBMIT_BODY).encode()
JSON_HEADERS = {"content-type": "application/json"}


def api_client(base_url: str, connections: int = 1) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"X-Gateway-Secret": GATEWAY_SECRET},
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        verify=False,  # plain HTTP on loopback: no CA bundle to load for each client
        trust_env=False,
    )


def submit_operation(users: int = ACCOUNTS_PER_PREFIX) -> Operation:
    """POST a generation request as user ``index % users``; success is 202."""
    headers = [{**JSON_HEADERS, "X-User-Id": service_user(i)} for i in range(users)]

    async def submit(client: httpx.AsyncClient, index: int) -> tuple[bool, str]:
        response = await client.post(
            GENERATIONS, content=SUBMIT_BYTES, headers=headers[index % users]
        )
        if response.status_code == 202:
            return True, ""
        return False, f"HTTP {response.status_code}"

    return submit


def healthz_operation() -> Operation:
    """GET /healthz: the same client, server and middleware, no work (the HTTP floor)."""

    async def healthz(client: httpx.AsyncClient, index: int) -> tuple[bool, str]:
        response = await client.get("/healthz")
        return (
            (True, "") if response.status_code == 200 else (False, f"HTTP {response.status_code}")
        )

    return healthz


# -- callbacks -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRef:
    job_id: str
    request_id: str
    user_id: str
    stage: str
    samples: int


def _asset(job: JobRef, asset_id: str, stem: str) -> dict[str, Any]:
    return {
        "id": asset_id,
        "url": f"https://assets.creativeflow.local/{job.request_id}/{job.job_id}/{stem}.png",
        "width": 1024,
        "height": 1024,
        "format": "png",
    }


def callback_body(job: JobRef, event: str) -> dict[str, Any]:
    """The body n8n posts (the same shape as the n8n simulator's)."""
    body: dict[str, Any] = {"event": event, "job_id": job.job_id, "request_id": job.request_id}
    if event == "samples_ready":
        body["samples"] = [_asset(job, f"s{n}", f"sample-{n}") for n in range(1, job.samples + 1)]
    elif event == "final_ready":
        body["asset"] = _asset(job, "final", "final")
    else:
        body["error"] = {
            "category": "platform",
            "code": "provider_unavailable",
            "message": "The image provider is unavailable (benchmark).",
        }
    return body


@dataclass(frozen=True, slots=True)
class SignedCallback:
    body: bytes
    headers: dict[str, str]


def sign_callbacks(jobs: Sequence[JobRef], event: str) -> list[SignedCallback]:
    """One signed callback per job, each with its own webhook-id (signed now: the API accepts
    five minutes of clock difference, far more than a phase lasts)."""
    now = int(time.time())
    signed = []
    for job in jobs:
        body = json.dumps(callback_body(job, event), separators=(",", ":")).encode()
        msg_id = f"msg_{uuid.uuid4().hex}"
        signed.append(SignedCallback(body, signed_headers(CALLBACK_SECRET, msg_id, now, body)))
    return signed


def callback_operation(callbacks: Sequence[SignedCallback]) -> Operation:
    """POST the ``index``-th prepared callback; None once they are all sent; success is 200
    with the outcome ``applied``."""

    async def post(client: httpx.AsyncClient, index: int) -> tuple[bool, str] | None:
        if index >= len(callbacks):
            return None
        callback = callbacks[index]
        response = await client.post(CALLBACKS, content=callback.body, headers=callback.headers)
        if response.status_code != 200:
            return False, f"HTTP {response.status_code}"
        outcome = response.json().get("outcome")
        return (True, "") if outcome == "applied" else (False, f"outcome {outcome}")

    return post


def published_jobs(
    stack: BenchStack, stage: str = "samples", exclude: set[str] | None = None, limit: int = 10**6
) -> list[JobRef]:
    """Jobs the service published and nobody called back yet, read from the tracking DB."""
    connection = stack.db_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT j.id, j.request_id, r.user_id, j.stage, r.samples_count
                FROM generation_jobs j JOIN generation_requests r ON r.id = j.request_id
                WHERE j.status = 'published' AND j.stage = %s AND r.user_id LIKE %s
                ORDER BY j.created_at
                LIMIT %s
                """,
                (stage, SERVICE_USER_PREFIX + "%", limit),
            )
            rows = cursor.fetchall()
    finally:
        connection.close()
    exclude = exclude or set()
    return [JobRef(*row) for row in rows if row[0] not in exclude]


# -- selections (round trips only) ---------------------------------------------------------------


async def select_sample(client: httpx.AsyncClient, job: JobRef, sample_id: str = "s1") -> bool:
    response = await client.post(
        f"{GENERATIONS}/{job.request_id}/selection",
        json={"sample_id": sample_id},
        headers={"X-User-Id": job.user_id},
    )
    return response.status_code == 202
