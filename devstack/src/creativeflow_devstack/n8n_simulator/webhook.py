"""The n8n simulator's webhook mode: receives jobs the way n8n's Webhook node does (``POST`` on one
path), and answers each exactly as the RabbitMQ mode does, through the same :class:`JobAnswerer`.

A stdlib ``ThreadingHTTPServer`` serves in a background thread. For each ``POST`` it checks the
Standard Webhooks signature (``job_secret``, the orchestrator's ``N8N_WEBHOOK_SECRET``), that the
``webhook-id`` is the job id, and the job against the JSON Schema; then it answers ``202`` at once
and hands the job to an answer thread (delay, signed callback, the same prompt triggers). A job id
already taken is answered ``200`` and dropped: that is how n8n must treat a second delivery.

    401  missing or wrong signature, or a stale timestamp
    422  not JSON, breaks the schema, or webhook-id differs from job_id
    202  accepted (also for a ``[hold]`` job, which then gets no callback)
    200  a duplicate of a job already accepted; nothing more happens
    204  a CORS preflight (``OPTIONS`` with ``Origin``) for ``POST`` on the path, listing ``POST``
         in ``Access-Control-Allow-Methods``: how n8n answers the orchestrator's readiness probe
         when an active workflow registered the job webhook (no execution is started)
    404  any other path, any other method on the path, and everything on the path while the
         workflow is inactive (as n8n answers for a webhook it has not registered)

``answer_dispatches_with(status)`` makes every job ``POST`` get that status and nothing else, to
test the orchestrator's dispatch failures; ``set_active(False)`` is the workflow deactivated.
Jobs accepted and not yet answered when the simulator stops are dropped (n8n's own execution queue
is not simulated); the orchestrator's deadlines deal with them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from creativeflow.domain.jobs import CANCEL_EVENT
from creativeflow.webhook_signature import SignatureError, verify
from creativeflow_devstack.n8n_simulator.answering import AnswerConfig, JobAnswerer, SimulatorStats
from creativeflow_devstack.n8n_simulator.outcomes import OutcomeKind
from creativeflow_devstack.n8n_simulator.sender import ResultSender

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_PATH = "/webhook/creativeflow-jobs"


@dataclass(frozen=True, slots=True, repr=False)
class WebhookSimulatorConfig:
    """``job_secret`` verifies incoming jobs; ``answering.secret`` signs the callbacks."""

    job_secret: str = field(repr=False)
    answering: AnswerConfig
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (see N8nWebhookSimulator.url)
    path: str = DEFAULT_WEBHOOK_PATH
    tolerance_seconds: int = 300
    max_body_bytes: int = 256 * 1024
    remembered_jobs: int = 10_000  # job ids kept for de-duplication

    def __post_init__(self) -> None:
        if not self.job_secret:
            raise ValueError("job_secret must not be empty")
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")

    def __repr__(self) -> str:
        return (
            f"WebhookSimulatorConfig(host={self.host!r}, port={self.port!r}, path={self.path!r}, "
            f"answering={self.answering!r})"
        )


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None


class N8nWebhookSimulator:
    def __init__(self, config: WebhookSimulatorConfig) -> None:
        self._config = config
        self._stop = threading.Event()
        self._answerer = JobAnswerer(config.answering, self._stop)
        self._lock = threading.Lock()
        self._taken: OrderedDict[str, None] = OrderedDict()  # job ids accepted, oldest first
        self._received: list[dict[str, Any]] = []
        self._fault_status: int | None = None
        self._active = True
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._answers: ThreadPoolExecutor | None = None
        self._resources = ExitStack()  # the callback sender's HTTP client
        self._sender: ResultSender | None = None

    def __repr__(self) -> str:
        return f"N8nWebhookSimulator({self._config!r})"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> N8nWebhookSimulator:
        """Listen in a background thread; return once the socket is bound and serving."""
        if self._server is not None:
            raise RuntimeError("the simulator was already started")
        # bind first: a port in use fails here, before anything needs closing
        self._server = ThreadingHTTPServer((self._config.host, self._config.port), _handler(self))
        self._sender = self._resources.enter_context(self._answerer.sender())
        self._answers = ThreadPoolExecutor(self._config.answering.concurrency, "n8n-webhook-answer")
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="n8n-webhook-simulator",
            daemon=True,
        )
        self._thread.start()
        log.info("n8n simulator receiving jobs at %s", self.url)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop listening; answers under way finish, those still waiting are dropped."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._answers is not None:
            self._answers.shutdown(wait=True, cancel_futures=True)
        self._resources.close()
        log.info("n8n webhook simulator stopped after %d job(s)", self.handled)

    def request_stop(self) -> None:
        """Safe from a signal handler: :meth:`run` notices and stops."""
        self._stop.set()

    def run(self) -> None:
        """Serve until :meth:`request_stop`, in the calling thread's lifetime."""
        self.start()
        try:
            while not self._stop.wait(0.2):
                pass
        finally:
            self.stop()

    def __enter__(self) -> N8nWebhookSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The webhook URL to give the orchestrator (``N8N_WEBHOOK_URL``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self._config.host}:{self._server.server_port}{self._config.path}"

    # -- what tests look at and change -----------------------------------------------------------

    @property
    def handled(self) -> int:
        return self._answerer.handled

    def stats(self) -> SimulatorStats:
        return self._answerer.stats()

    def jobs(self) -> list[dict[str, Any]]:
        """Every job accepted so far, in arrival order (duplicates not repeated)."""
        with self._lock:
            return list(self._received)

    def answer_dispatches_with(self, status: int | None) -> None:
        """Answer every job ``POST`` with ``status`` and do nothing else; None to stop."""
        with self._lock:
            self._fault_status = status

    def set_active(self, active: bool) -> None:
        """The workflow activated or deactivated: inactive, n8n has no webhook on the path."""
        with self._lock:
            self._active = active

    @property
    def active(self) -> bool:
        with self._lock:
            return self._active

    # -- one request (server threads) ------------------------------------------------------------

    def receive(self, headers: dict[str, str], body: bytes) -> Reply:
        """Decide the answer to one job ``POST``; ``headers`` have lower-case names."""
        with self._lock:
            fault = self._fault_status
            active = self._active
        if not active:
            return Reply(404, {"message": _not_registered("POST", self._config.path)})
        if fault is not None:
            self._answerer.count(faulted=1)
            return Reply(fault, {"message": "simulated n8n failure"})
        try:
            verify(
                [self._config.job_secret],
                headers,
                body,
                now=int(time.time()),
                tolerance_seconds=self._config.tolerance_seconds,
            )
        except SignatureError as refusal:
            log.warning("refusing a job with a bad signature: %s", refusal)
            self._answerer.count(unauthorized=1)
            return Reply(401, {"message": str(refusal)})
        if headers.get("x-event-type") == CANCEL_EVENT:
            job_id = self._answerer.cancel(body)
            if job_id is None or headers["webhook-id"] != f"cancel-{job_id}":
                return Reply(422, {"message": "not a valid cancellation for this webhook-id"})
            return Reply(200, {"status": "cancelled", "job_id": job_id})
        job = self._answerer.parse(body)
        if job is None or job["job_id"] != headers["webhook-id"]:
            self._answerer.count(handled=1, rejected=1)
            return Reply(422, {"message": "not a valid job message for this webhook-id"})
        if not self._take(job):
            self._answerer.count(duplicates=1)
            return Reply(200, {"status": "duplicate", "job_id": job["job_id"]})
        self._dispatch(job)
        return Reply(202, {"status": "accepted", "job_id": job["job_id"]})

    def _take(self, job: dict[str, Any]) -> bool:
        """Remember the job id; False when it was taken before (a second delivery)."""
        with self._lock:
            if job["job_id"] in self._taken:
                return False
            self._taken[job["job_id"]] = None
            if len(self._taken) > self._config.remembered_jobs:
                self._taken.popitem(last=False)
            self._received.append(job)
            return True

    def _dispatch(self, job: dict[str, Any]) -> None:
        outcome = self._answerer.decide(job)
        if outcome.kind is OutcomeKind.HOLD:
            log.info("holding job %s: no callback will be sent", job["job_id"])
            self._answerer.count(handled=1, held=1)
            return
        assert self._answers is not None and self._sender is not None
        self._answers.submit(self._answerer.answer, self._sender, job, outcome, self._count_handled)

    def _count_handled(self) -> None:
        self._answerer.count(handled=1)

    @property
    def max_body_bytes(self) -> int:
        return self._config.max_body_bytes

    @property
    def path(self) -> str:
        return self._config.path


def _handler(simulator: N8nWebhookSimulator) -> type[BaseHTTPRequestHandler]:
    class WebhookHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the orchestrator's pooled client expects

        def do_POST(self) -> None:
            if self.path != simulator.path:
                self._discard_body()
                self._reply(Reply(404, {"message": f"no webhook at {self.path}"}))
                return
            length = int(self.headers.get("content-length") or 0)
            if length > simulator.max_body_bytes:
                self.close_connection = True
                self._reply(Reply(413, {"message": "job message too large"}))
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._reply(simulator.receive(headers, body))

        def do_HEAD(self) -> None:
            self._not_registered(with_body=False)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(Reply(200, {"status": "ok"}))
                return
            self._not_registered()

        def do_OPTIONS(self) -> None:
            # n8n answers a preflight from its registered webhooks and runs nothing; without an
            # Origin it answers 204 for any path, so only a preflight with one says anything
            if "origin" not in self.headers:
                self._reply(Reply(204), with_body=False)
                return
            wanted = self.headers.get("access-control-request-method", "").upper()
            if self.path != simulator.path or not simulator.active or wanted not in ("", "POST"):
                self._reply(Reply(404, {"message": _not_registered(wanted, self.path)}))
                return
            self._reply(Reply(204), with_body=False, allow_methods="OPTIONS, POST")

        def do_PUT(self) -> None:
            self._discard_body()
            self._not_registered()

        do_PATCH = do_PUT
        do_DELETE = do_PUT

        def _not_registered(self, *, with_body: bool = True) -> None:
            message = _not_registered(self.command, self.path)
            self._reply(Reply(404, {"message": message}), with_body=with_body)

        def _discard_body(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > simulator.max_body_bytes:
                self.close_connection = True  # the rest of the body is not worth reading
            elif length:
                self.rfile.read(length)

        def _reply(
            self, reply: Reply, *, with_body: bool = True, allow_methods: str | None = None
        ) -> None:
            payload = json.dumps(reply.body or {}).encode() if with_body else b""
            self.send_response(reply.status)
            if allow_methods is not None:
                self.send_header("access-control-allow-methods", allow_methods)
                self.send_header("access-control-allow-origin", self.headers.get("origin", "*"))
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if with_body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("n8n webhook simulator: " + format, *args)

    return WebhookHandler


def _not_registered(method: str, path: str) -> str:
    return f'The requested webhook "{method} {path.rsplit("/", 1)[-1]}" is not registered.'
