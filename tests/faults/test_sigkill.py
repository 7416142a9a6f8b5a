"""The API process killed with SIGKILL in the middle of a load, restarted and swept: every debit
is backed by dispatched work or refunded, nobody is charged twice, nothing stays transient."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from creativeflow_devstack.n8n_simulator import N8nSimulator, SimulatorConfig
from tests.faults.conftest import Rig
from tests.integration.rabbit_support import RABBITMQ_URL, events_env

pytestmark = pytest.mark.asyncio

GATEWAY = "sigkill-gateway-secret"
CALLBACK = "sigkill-callback-secret"
BODY = {
    "prompt": "a field of sunflowers",
    "format": "png",
    "width": 512,
    "height": 512,
    "samples": 2,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _api_env(rig: Rig, port: int) -> dict[str, str]:
    settings = rig.settings
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "RABBITMQ_GENERATION_EXCHANGE": settings.rabbitmq_exchange,
        "RABBITMQ_N8N_JOB_QUEUE": settings.rabbitmq_queue,
        "RABBITMQ_DEAD_LETTER_EXCHANGE": settings.rabbitmq_dead_letter_exchange,
        "RABBITMQ_DEAD_LETTER_QUEUE": settings.rabbitmq_dead_letter_queue,
        "RABBITMQ_N8N_CANCEL_QUEUE": settings.rabbitmq_cancel_queue,
        **events_env(settings),
        "ODOO_URL": settings.odoo_url,
        "ODOO_DB": settings.odoo_db,
        "ODOO_LOGIN": "orchestrator",
        "ODOO_PASSWORD": "orchestrator",
        "NOTIFICATION_SERVICE_URL": settings.notification_service_url,
        "N8N_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
        "N8N_CALLBACK_SECRETS": CALLBACK,
        "GATEWAY_SHARED_SECRET": GATEWAY,
        "RECOVERY_INTERVAL_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
    }


def _start_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "creativeflow", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("the API exited at start")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the API did not start")


@pytest.fixture
def simulator(rig: Rig) -> Iterator[N8nSimulator]:
    with N8nSimulator(
        SimulatorConfig(
            rabbitmq_url=RABBITMQ_URL,
            secret=CALLBACK,
            queue=rig.settings.rabbitmq_queue,
            cancel_queue=rig.settings.rabbitmq_cancel_queue,
            delay=0.05,
            callback_attempts=2,
            retry_backoff=0.1,
            connection_name=f"sigkill-sim-{uuid.uuid4().hex[:8]}",
        )
    ) as running:
        yield running


async def test_sigkill_in_the_middle_of_a_load_then_restart_and_sweep(
    rig: Rig, simulator: N8nSimulator
) -> None:
    users = [rig.new_user(balance=10_000) for _ in range(4)]
    opening = dict.fromkeys(users, 10_000)
    port = _free_port()
    env = _api_env(rig, port)
    api = _start_api(env, port)
    stop = threading.Event()
    answers: list[int] = []

    def client_loop(worker: int) -> None:
        user = users[worker % len(users)]
        headers = {"X-Gateway-Secret": GATEWAY, "X-User-Id": user}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:
            for _ in range(60):  # bounded: the kill comes long before this runs out
                if stop.is_set():
                    return
                try:
                    answers.append(client.post("/api/v1/generations", json=BODY).status_code)
                except httpx.HTTPError:
                    answers.append(0)  # the process died under this request

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(client_loop, n) for n in range(8)]
        deadline = time.monotonic() + 60
        while answers.count(202) < 40 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(api.pid, signal.SIGKILL)
        api.wait(timeout=30)
        time.sleep(0.5)
        stop.set()
        for future in futures:
            future.result()
    assert answers.count(202) >= 40
    api = _start_api(env, port)  # restarted on the same port: n8n's callbacks reach it again
    try:
        time.sleep(1.0)  # let the simulator finish the jobs it holds
        sweep = subprocess.run(
            [sys.executable, "-m", "creativeflow", "sweep"],
            env={**env, "RECOVERY_GRACE_SECONDS": "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sweep.returncode == 0, sweep.stderr[-2000:]
    finally:
        api.terminate()
        api.wait(timeout=30)
    await rig.recover()  # a day later: whatever n8n never answered has timed out and is refunded
    await rig.assert_invariants(users, opening)
    debits = [
        e for e in rig.emulator.ledger() if e["user_id"] in users and e["operation"] == "debit"
    ]
    assert len(debits) >= 40
