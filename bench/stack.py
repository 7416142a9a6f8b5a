"""The local stack the benchmark drives, every piece in its own process so that no two share a
GIL: the Odoo emulator, the notification sink and the API (``bench.api_server``) are
subprocesses of this one; PostgreSQL and RabbitMQ are the real local servers.

Everything is named for this run and removed at the end: a throw-away database (migrated with
the real Alembic migrations, dropped ``WITH (FORCE)``), the exchanges and queues
``bench.<tag>.*``, the emulator's seed file. Only processes started here are stopped, by pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pika
import psycopg2
from sqlalchemy.engine import make_url

from creativeflow.adapters.rabbitmq.config import RabbitConfig
from creativeflow.adapters.rabbitmq.topology import declare_topology
from creativeflow.adapters.tracking.databases import create_database, drop_database
from creativeflow.adapters.tracking.migrate import upgrade
from creativeflow_devstack.odoo_emulator import default_seed_path

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "CREATIVEFLOW_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
RABBITMQ_URL = os.environ.get(
    "CREATIVEFLOW_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"
)

GATEWAY_SECRET = "bench-gateway-secret"
CALLBACK_SECRET = "bench-callback-secret"
ADMIN_TOKEN = "bench-admin-token"
ODOO_LOGIN = "orchestrator"
ODOO_PASSWORD = "orchestrator"

BENCH_TIER = "bench"
ACCOUNT_BALANCE = 2_000_000_000  # XML-RPC integers are 32-bit
# Many users, each submitting now and then, as in production: the submit counts the user's
# requests in flight, so one user with thousands of them would measure something else.
ACCOUNTS_PER_PREFIX = 4096
SERVICE_USER_PREFIX = "bench-api-"
BARE_USER_PREFIX = "bench-bare-"
DIRECT_USER_PREFIX = "bench-direct-"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_user(index: int) -> str:
    return f"{SERVICE_USER_PREFIX}{index % ACCOUNTS_PER_PREFIX}"


def bare_user(index: int) -> str:
    return f"{BARE_USER_PREFIX}{index % ACCOUNTS_PER_PREFIX}"


def direct_user(index: int) -> str:
    return f"{DIRECT_USER_PREFIX}{index % ACCOUNTS_PER_PREFIX}"


# -- /proc readings ------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_by_command(commands: Mapping[str, tuple[str, ...]]) -> dict[str, float]:
    """CPU seconds used so far by every process whose command name is in each group
    (e.g. ``{"postgres": ("postgres",), "rabbitmq": ("beam.smp",)}``); read only."""
    totals = dict.fromkeys(commands, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        for group, names in commands.items():
            if comm in names:
                fields = raw.rsplit(")", 1)[1].split()
                totals[group] += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return totals


_PG_AUXILIARY = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "stats collector",
    "postmaster",
    "/postgres ",
)


def postgres_cpu(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL processes that serve this run: the backends
    connected to ``database`` and the server's own auxiliary processes (other databases'
    backends, e.g. another test run's, are left out)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            if raw[raw.index("(") + 1 : raw.rindex(")")] != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if f" {database} " in title or any(name in title for name in _PG_AUXILIARY):
            fields = raw.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / _CLOCK_TICKS, total / _CLOCK_TICKS


# -- child processes -----------------------------------------------------------------------------


@dataclass
class ChildProcess:
    """A subprocess this harness started; its output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return process_rss_bytes(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def start_child(
    name: str, args: list[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> ChildProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return ChildProcess(name, popen, log_path)


def wait_http(url: str, child: ChildProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited; see {child.log_path}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not answer {url} in {timeout}s")
        time.sleep(0.1)


# -- the Odoo emulator in its own process --------------------------------------------------------


def bench_seed() -> dict[str, Any]:
    """The package's seed plus a tier without caps that matter here, and accounts for the
    service's and the bare pipeline's clients."""
    seed: dict[str, Any] = json.loads(default_seed_path().read_text())
    studio = next(t for t in seed["tiers"] if t["code"] == "studio")
    seed["tiers"].append(
        {
            **studio,
            "code": BENCH_TIER,
            "name": "Benchmark",
            "max_requests_in_flight": 1_000_000,
            "price_per_sample": 1,
            "price_final_asset": 1,
            "price_per_regeneration_sample": 1,
        }
    )
    for index in range(ACCOUNTS_PER_PREFIX):
        for user in (service_user(index), bare_user(index), direct_user(index)):
            seed["accounts"].append(
                {"platform_user_id": user, "tier": BENCH_TIER, "balance": ACCOUNT_BALANCE}
            )
    return seed


class RemoteEmulator:
    """The emulator's control face (``/__emulator__``), shaped like ``OdooEmulator``'s methods."""

    def __init__(self, url: str, database: str) -> None:
        self.url = url
        self.database = database
        self._http = httpx.Client(base_url=url + "/__emulator__", timeout=10)

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/stats")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def request_count(self, **filters: str) -> int:
        if not filters:
            return int(self.stats()["requests"])
        response = self._http.get("/stats", params=filters)
        response.raise_for_status()
        return int(response.json()["count"])

    def by_service_method(self) -> dict[str, int]:
        return dict(self.stats()["by_service_method"])

    def reset_counters(self) -> None:
        self._http.post("/reset-counters").raise_for_status()

    def set_latency(self, seconds: float) -> None:
        self._http.post("/faults", json={"latency": seconds}).raise_for_status()

    def close(self) -> None:
        self._http.close()


# -- the whole stack -----------------------------------------------------------------------------


@dataclass
class StackNames:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def database(self) -> str:
        return f"cf_bench_{self.tag}"

    @property
    def rabbit(self) -> RabbitConfig:
        return RabbitConfig(
            url=RABBITMQ_URL,
            exchange=f"bench.{self.tag}.generation",
            queue=f"bench.{self.tag}.jobs",
            dead_letter_exchange=f"bench.{self.tag}.dlx",
            dead_letter_queue=f"bench.{self.tag}.jobs.dead",
            cancel_queue=f"bench.{self.tag}.cancellations",
            connection_name=f"bench-{self.tag}",
        )

    @property
    def events(self) -> dict[str, str]:
        """The API's events exchange and unrouted queue, this run's own."""
        return {
            "RABBITMQ_EVENTS_EXCHANGE": f"bench.{self.tag}.events",
            "RABBITMQ_EVENTS_UNROUTED_EXCHANGE": f"bench.{self.tag}.events.unrouted",
            "RABBITMQ_EVENTS_UNROUTED_QUEUE": f"bench.{self.tag}.events.unrouted",
        }


class BenchStack:
    """Start with :meth:`open` (a context manager); the API can be restarted with other pool
    sizes between phases (:meth:`start_api`)."""

    def __init__(self, log_dir: Path) -> None:
        self.names = StackNames()
        self.log_dir = log_dir
        self.database_url = ""
        self.emulator: RemoteEmulator | None = None
        self.api: ChildProcess | None = None
        self.api_url = ""
        self.api_settings: dict[str, str] = {}
        self._children: list[ChildProcess] = []
        self._sink_url = ""
        self._seed_dir: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @contextmanager
    def open(cls, log_dir: Path) -> Iterator[BenchStack]:
        stack = cls(log_dir)
        try:
            stack._start()
            yield stack
        finally:
            stack.close()

    def _start(self) -> None:
        self._create_database()
        self._declare_rabbit()
        self._start_emulator()
        self._start_sink()

    def close(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self.emulator is not None:
            self.emulator.close()
        self._delete_rabbit()
        self._drop_database()
        if self._seed_dir is not None:
            self._seed_dir.cleanup()

    # -- PostgreSQL ----------------------------------------------------------------------------

    def _create_database(self) -> None:
        self.database_url = create_database(POSTGRES_ADMIN_URL, self.names.database)
        upgrade(self.database_url)

    def _drop_database(self) -> None:
        if self.database_url:
            drop_database(POSTGRES_ADMIN_URL, self.names.database)

    def vacuum_analyze(self) -> None:
        """What autovacuum would have done by now (the local server may run without it, as
        this one does): without statistics the planner picks plans that scan every request."""
        connection = self.db_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE)")
        finally:
            connection.close()

    def db_connection(self) -> Any:
        url = make_url(self.database_url)
        connection = psycopg2.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    # -- RabbitMQ ------------------------------------------------------------------------------

    def _declare_rabbit(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            declare_topology(connection, self.names.rabbit)
        finally:
            connection.close()

    def _delete_rabbit(self) -> None:
        rabbit = self.names.rabbit
        try:
            connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        except Exception:  # nothing to clean if the broker is gone
            return
        try:
            channel = connection.channel()
            for queue in (
                rabbit.queue,
                rabbit.dead_letter_queue,
                rabbit.cancel_queue,
                self.tap_queue,
                self.names.events["RABBITMQ_EVENTS_UNROUTED_QUEUE"],
            ):
                channel.queue_delete(queue)
            for exchange in (
                rabbit.exchange,
                rabbit.dead_letter_exchange,
                self.names.events["RABBITMQ_EVENTS_EXCHANGE"],
                self.names.events["RABBITMQ_EVENTS_UNROUTED_EXCHANGE"],
            ):
                channel.exchange_delete(exchange)
        finally:
            connection.close()

    @property
    def tap_queue(self) -> str:
        return f"bench.{self.names.tag}.tap"

    def purge_jobs(self) -> int:
        """Empty the job queue between phases (nobody consumes it while the benchmark runs)."""
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            frame = connection.channel().queue_purge(self.names.rabbit.queue)
            return int(frame.method.message_count)
        finally:
            connection.close()

    def bind_tap(self) -> None:
        rabbit = self.names.rabbit
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            channel = connection.channel()
            channel.queue_declare(self.tap_queue, durable=False, auto_delete=False)
            channel.queue_bind(self.tap_queue, rabbit.exchange, rabbit.routing_key)
        finally:
            connection.close()

    def drain_tap(self) -> list[dict[str, Any]]:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            channel = connection.channel()
            messages: list[dict[str, Any]] = []
            while True:
                method, _properties, body = channel.basic_get(self.tap_queue, auto_ack=True)
                if method is None:
                    return messages
                messages.append(json.loads(body))
        finally:
            connection.close()

    def unbind_tap(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        try:
            connection.channel().queue_delete(self.tap_queue)
        finally:
            connection.close()

    # -- the emulator and the sink -----------------------------------------------------------

    def _start_emulator(self) -> None:
        self._seed_dir = tempfile.TemporaryDirectory(prefix="cf-bench-")
        seed_path = Path(self._seed_dir.name) / "seed.json"
        seed = bench_seed()
        seed_path.write_text(json.dumps(seed))
        port = free_port()
        child = start_child(
            "odoo-emulator",
            [
                "-m",
                "creativeflow_devstack.odoo_emulator",
                "--port",
                str(port),
                "--seed",
                str(seed_path),
                "--log-level",
                "WARNING",
            ],
            self.log_dir,
        )
        self._children.append(child)
        self.emulator_process = child
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/__emulator__/stats", child)
        self.emulator = RemoteEmulator(url, seed["database"])

    def _start_sink(self) -> None:
        port = free_port()
        child = start_child(
            "notification-sink",
            ["-m", "creativeflow_devstack.notification_sink", "--port", str(port)],
            self.log_dir,
        )
        self._children.append(child)
        self.sink_process = child
        self._sink_url = f"http://127.0.0.1:{port}"
        wait_http(self._sink_url + "/healthz", child)

    # -- the API -------------------------------------------------------------------------------

    def api_environment(self, port: int, overrides: Mapping[str, str]) -> dict[str, str]:
        rabbit = self.names.rabbit
        assert self.emulator is not None
        env = {
            "ENVIRONMENT": "test",
            "DATABASE_URL": self.database_url,
            "RABBITMQ_URL": RABBITMQ_URL,
            "RABBITMQ_GENERATION_EXCHANGE": rabbit.exchange,
            "RABBITMQ_N8N_JOB_QUEUE": rabbit.queue,
            "RABBITMQ_N8N_JOB_ROUTING_KEY": rabbit.routing_key,
            "RABBITMQ_DEAD_LETTER_EXCHANGE": rabbit.dead_letter_exchange,
            "RABBITMQ_DEAD_LETTER_QUEUE": rabbit.dead_letter_queue,
            "RABBITMQ_N8N_CANCEL_QUEUE": rabbit.cancel_queue,
            **self.names.events,
            "ODOO_URL": self.emulator.url,
            "ODOO_DB": self.emulator.database,
            "ODOO_LOGIN": ODOO_LOGIN,
            "ODOO_PASSWORD": ODOO_PASSWORD,
            "ODOO_PROTOCOL": "xmlrpc",
            "NOTIFICATION_SERVICE_URL": self._sink_url,
            "N8N_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}",
            "N8N_CALLBACK_SECRETS": CALLBACK_SECRET,
            "GATEWAY_SHARED_SECRET": GATEWAY_SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            # the periodic sweep is left out so that every phase measures the same work
            "RECOVERY_INTERVAL_SECONDS": "0",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        env.update(overrides)
        return env

    def start_api(self, overrides: Mapping[str, str] | None = None) -> ChildProcess:
        """(Re)start the API subprocess with these extra settings (pool sizes and the like)."""
        self.stop_api()
        port = free_port()
        env = self.api_environment(port, overrides or {})
        child = start_child(
            "api", ["-m", "bench.api_server", "--port", str(port)], self.log_dir, env
        )
        self._children.append(child)
        self.api = child
        self.api_url = f"http://127.0.0.1:{port}"
        self.api_settings = {
            k: v for k, v in env.items() if k.endswith(("WORKERS", "POOL_SIZE", "OVERFLOW"))
        }
        wait_http(self.api_url + "/healthz", child)
        return child

    def stop_api(self) -> None:
        if self.api is not None:
            self.api.stop()
            self._children.remove(self.api)
            self.api = None

    def api_counters(self) -> dict[str, int]:
        response = httpx.get(self.api_url + "/__bench__/counters", timeout=10)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def reset_api_counters(self) -> None:
        httpx.post(self.api_url + "/__bench__/counters/reset", timeout=10).raise_for_status()

    def process_cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each piece (the API only while it runs)."""
        readings = {
            "emulator": self.emulator_process.cpu_seconds(),
            "sink": self.sink_process.cpu_seconds(),
            "api": self.api.cpu_seconds() if self.api is not None else 0.0,
        }
        readings.update(cpu_by_command({"rabbitmq": ("beam.smp",)}))
        readings["postgres"] = postgres_cpu(self.names.database)
        return readings
