"""The bare pipeline: the work of one submit with no web framework, run as a plain script.

Per submit, exactly what the service does on the wire, and nothing else:

1. one transaction: take the user's advisory lock and count the user's requests in flight
   (the tier's cap, as the service does), INSERT the request row (``VALIDATING_CREDITS``), the
   pending debit of the credit-operation journal and the job row with its prepared payload (the
   same rows, built by the same domain code, as the service writes);
2. the same Odoo debit, its spec carrying that count (``OdooClient.debit``, XML-RPC, one client
   per thread, logged in once);
3. the same confirmed publish (pika ``BlockingConnection`` per thread, ``confirm_delivery``,
   ``mandatory=True``, persistent, the same body and properties);
4. one transaction: UPDATE the debit to ``applied``, the job to ``published``, the request to
   ``PROCESSING_SAMPLES`` (the columns the service's flush changes).

Each of ``concurrency`` threads owns its Odoo client, its psycopg2 connection and its pika
connection, and loops. There is no asyncio, no thread-pool hop, no ORM, no HTTP server.

It runs as a subprocess of ``bench.run`` (so it never shares a GIL with the load generator or
the emulator) and talks over stdin/stdout: it warms up (logins, connections), prints ``READY``,
waits for ``GO <window_start> <window_end>`` (monotonic clock), runs until ``window_end`` and
writes its samples as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pika
import psycopg2
from psycopg2.extras import Json
from sqlalchemy.engine import make_url

from bench.load import Recording
from creativeflow.adapters.odoo import OdooClient, OdooConfig
from creativeflow.adapters.rabbitmq.config import RabbitConfig, connection_parameters
from creativeflow.adapters.rabbitmq.publisher import job_properties
from creativeflow.domain.jobs import Stage
from creativeflow.domain.model import GenerationRequest, Job
from creativeflow.domain.states import Status
from creativeflow.services.flow import FlowConfig, build_job, job_message

INSERT_REQUEST = """
INSERT INTO generation_requests (
    id, user_id, status, prompt, format, width, height, samples_count, style_guidance,
    brand_elements, project_id, advanced_model, model, regeneration_count, samples,
    selected_sample_id, final_asset, failure_category, failure_code, failure_message,
    correlation_id, history, deadline_at, created_at, updated_at
) VALUES (
    %(id)s, %(user_id)s, %(status)s, %(prompt)s, %(format)s, %(width)s, %(height)s,
    %(samples_count)s, %(style_guidance)s, %(brand_elements)s, %(project_id)s,
    %(advanced_model)s, %(model)s, %(regeneration_count)s, %(samples)s, NULL, NULL, NULL, NULL,
    NULL, %(correlation_id)s, %(history)s, %(deadline_at)s, %(created_at)s, %(updated_at)s
)
"""
INSERT_DEBIT = """
INSERT INTO credit_operations (
    request_id, user_id, action, kind, status, amount, ledger_entry_id, refusal_code,
    last_error, attempts, created_at, updated_at
) VALUES (%s, %s, %s, 'debit', 'pending', NULL, NULL, NULL, NULL, 1, %s, %s)
RETURNING id
"""
INSERT_JOB = """
INSERT INTO generation_jobs (
    id, request_id, stage, action, attempt, status, deadline_at, payload, created_at, updated_at
) VALUES (%s, %s, %s, %s, %s, 'prepared', %s, %s, %s, %s)
"""
# the submit's tier cap: one submit of a user at a time counts the user's requests in flight
LOCK_USER = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
COUNT_IN_FLIGHT = """
SELECT count(*) FROM generation_requests WHERE user_id = %s AND status IN %s
"""
TRANSIENT = tuple(s.value for s in Status if s.is_transient)
SETTLE_DEBIT = """
UPDATE credit_operations SET status = 'applied', amount = %s, ledger_entry_id = %s,
    updated_at = %s
WHERE request_id = %s AND action = %s AND kind = 'debit'
"""
PUBLISHED_JOB = "UPDATE generation_jobs SET status = 'published', updated_at = %s WHERE id = %s"
DISPATCHED_REQUEST = """
UPDATE generation_requests SET status = %s, history = %s, deadline_at = %s, updated_at = %s
WHERE id = %s
"""

# what the API's schema turns the benchmark's brand elements into
BRAND_ELEMENTS = {"colors": ["#FF6600", "#003366"], "fonts": ["Inter"], "logo_url": None}


@dataclass(frozen=True)
class BareConfig:
    database_url: str
    odoo_url: str
    odoo_database: str
    odoo_login: str
    odoo_password: str
    rabbitmq_url: str
    exchange: str
    routing_key: str
    callback_base_url: str
    user_prefix: str
    users: int
    concurrency: int
    statement_timeout_ms: int = 5000

    def odoo(self) -> OdooConfig:
        return OdooConfig(
            url=self.odoo_url,
            database=self.odoo_database,
            login=self.odoo_login,
            secret=self.odoo_password,
            protocol="xmlrpc",
        )

    def rabbit(self) -> RabbitConfig:
        return RabbitConfig(
            url=self.rabbitmq_url,
            exchange=self.exchange,
            routing_key=self.routing_key,
            connection_name="creativeflow-bench-bare",
        )


class BarePipeline:
    """One thread's connections and the submit loop. Not thread-safe: one per thread."""

    def __init__(self, config: BareConfig, body: dict[str, Any]) -> None:
        self._config = config
        self._body = body
        self._flow = FlowConfig(callback_base_url=config.callback_base_url)
        self._odoo = OdooClient(config.odoo())
        url = make_url(config.database_url)
        self._db = psycopg2.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
            connect_timeout=5,
            options=f"-c statement_timeout={config.statement_timeout_ms}",
            application_name="creativeflow-bench-bare",
        )
        rabbit = config.rabbit()
        self._rabbit = rabbit
        self._connection = pika.BlockingConnection(connection_parameters(rabbit))
        self._channel = self._connection.channel()
        self._channel.confirm_delivery()
        self._odoo.authenticate()

    def close(self) -> None:
        self._odoo.close()
        self._db.close()
        if self._connection.is_open:
            self._connection.close()

    def submit(self, user_id: str) -> None:
        request, job = self._new_request(user_id)
        in_flight = self._open(request, job)
        spec = replace(request.spec(), requests_in_flight=in_flight)
        receipt = self._odoo.debit(user_id, request.id, "samples", spec, request.correlation_id)
        message = job_message(job)
        self._channel.basic_publish(
            self._rabbit.exchange,
            self._rabbit.routing_key,
            message.encode(),
            properties=job_properties(message, self._rabbit.connection_name, time.time()),
            mandatory=True,
        )
        self._settle(request, job, receipt.amount, receipt.entry_id)

    def _new_request(self, user_id: str) -> tuple[GenerationRequest, Job]:
        body = self._body
        now = datetime.now(UTC)
        request = GenerationRequest(
            id=str(uuid.uuid4()),
            user_id=user_id,
            prompt=body["prompt"],
            format=body["format"],
            width=body["width"],
            height=body["height"],
            samples_count=body["samples"],
            correlation_id=uuid.uuid4().hex,
            created_at=now,
            style_guidance=body.get("style_guidance"),
            brand_elements=BRAND_ELEMENTS,
            project_id=body.get("project_id"),
            model=self._flow.standard_model,
        )
        request.start(now)
        request.transition(Status.VALIDATING_CREDITS, now)
        request.deadline_at = now + self._flow.dispatch_deadline
        job = build_job(
            self._flow, request, stage=Stage.SAMPLES, action="samples", attempt=1, now=now
        )
        return request, job

    def _open(self, request: GenerationRequest, job: Job) -> int:
        now = datetime.now(UTC)
        with self._db.cursor() as cursor:
            cursor.execute(LOCK_USER, (request.user_id,))
            cursor.execute(COUNT_IN_FLIGHT, (request.user_id, TRANSIENT))
            in_flight = int(cursor.fetchone()[0])
            cursor.execute(
                INSERT_REQUEST,
                {
                    "id": request.id,
                    "user_id": request.user_id,
                    "status": request.status.value,
                    "prompt": request.prompt,
                    "format": request.format,
                    "width": request.width,
                    "height": request.height,
                    "samples_count": request.samples_count,
                    "style_guidance": request.style_guidance,
                    "brand_elements": Json(request.brand_elements),
                    "project_id": request.project_id,
                    "advanced_model": False,
                    "model": request.model,
                    "regeneration_count": request.regeneration_count,
                    "samples": Json([]),
                    "correlation_id": request.correlation_id,
                    "history": Json(request.history),
                    "deadline_at": request.deadline_at,
                    "created_at": request.created_at,
                    "updated_at": request.updated_at,
                },
            )
            cursor.execute(INSERT_DEBIT, (request.id, request.user_id, "samples", now, now))
            cursor.fetchone()
            cursor.execute(
                INSERT_JOB,
                (
                    job.id,
                    job.request_id,
                    job.stage.value,
                    job.action,
                    job.attempt,
                    job.deadline_at,
                    Json(job.payload),
                    job.created_at,
                    job.created_at,
                ),
            )
        self._db.commit()
        return in_flight

    def _settle(self, request: GenerationRequest, job: Job, amount: int, entry_id: int) -> None:
        now = datetime.now(UTC)
        request.transition(Status.PUBLISHING_TO_QUEUE, now)
        request.transition(Status.PROCESSING_SAMPLES, now)
        request.deadline_at = job.deadline_at
        with self._db.cursor() as cursor:
            cursor.execute(SETTLE_DEBIT, (amount, entry_id, now, request.id, "samples"))
            cursor.execute(PUBLISHED_JOB, (now, job.id))
            cursor.execute(
                DISPATCHED_REQUEST,
                (request.status.value, Json(request.history), request.deadline_at, now, request.id),
            )
        self._db.commit()


def run(config: BareConfig, body: dict[str, Any], out_path: str, warmup_submits: int = 2) -> None:
    pipelines: list[BarePipeline | None] = [None] * config.concurrency
    failures: list[str] = []
    ready = threading.Barrier(config.concurrency + 1)
    go = threading.Event()
    window: dict[str, float] = {}
    recordings: list[list[tuple[float, float, bool, str]]] = [[] for _ in range(config.concurrency)]

    def worker(number: int) -> None:
        # thread n submits as users n, n + concurrency, n + 2 * concurrency, ... in turn
        users = [
            f"{config.user_prefix}{index % config.users}"
            for index in range(number, config.users, config.concurrency)
        ] or [f"{config.user_prefix}{number % config.users}"]
        turn = 0
        try:
            pipeline = BarePipeline(config, body)
            pipelines[number] = pipeline
            for _ in range(warmup_submits):
                pipeline.submit(users[turn % len(users)])
                turn += 1
        except Exception:
            failures.append(traceback.format_exc())
            ready.abort()
            return
        ready.wait()
        go.wait()
        samples = recordings[number]
        end_at = window["end"]
        while True:
            start = time.monotonic()
            if start >= end_at:
                return
            try:
                pipeline.submit(users[turn % len(users)])
                turn += 1
                ok, label = True, ""
            except Exception as exc:
                ok, label = False, type(exc).__name__
            samples.append((start, time.monotonic(), ok, label))

    threads = [
        threading.Thread(target=worker, args=(n,), name=f"bare-{n}", daemon=True)
        for n in range(config.concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=120)
    except threading.BrokenBarrierError:
        print("FAILED", flush=True)
        sys.stderr.write("\n".join(failures))
        sys.exit(1)
    print("READY", flush=True)
    command = sys.stdin.readline().split()
    assert command and command[0] == "GO", command
    window["start"], window["end"] = float(command[1]), float(command[2])
    go.set()
    for thread in threads:
        thread.join()
    recording = Recording(window_start=window["start"], window_end=window["end"])
    for samples in recordings:
        for start, end, ok, label in samples:
            recording.add(start, end, ok, label)
    with open(out_path, "w") as out:
        json.dump(recording.to_json(), out)
    for pipeline in pipelines:
        if pipeline is not None:
            pipeline.close()
    print("DONE", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--config", required=True, help="JSON: BareConfig fields and 'body'")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    with open(options.config) as source:
        document = json.load(source)
    body = document.pop("body")
    run(BareConfig(**document), body, options.out)


if __name__ == "__main__":
    main()
