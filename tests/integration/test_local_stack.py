"""The local stack's promises to a developer, with ``creativeflow dev`` run as a separate process
on the real PostgreSQL and RabbitMQ: the emulated Odoo keeps its accounts and ledger between runs
(so ``creativeflow reconcile`` against the kept tracking database stays clean, with no
credentials given), ``--reset`` empties both together, a port already taken is refused before
anything starts in one line naming the setting, and ``creativeflow migrate`` creates a missing
database or says what to run."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import threading
import time
import uuid
import xmlrpc.client
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy.engine import make_url

from creativeflow_devstack import stack
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.odoo_emulator.persistence import StateFile, StateUnreadable
from tests.cli_support import GIVE_UP_SECONDS, command, environment, run_cli
from tests.conftest import POSTGRES_ADMIN_URL, drop_database
from tests.integration.rabbit_support import (
    RABBITMQ_URL,
    channel,
    delete_topology,
    unique_config,
    unique_events_env,
)

PNG = {"format": "png", "width": 512, "height": 512, "samples": 2}
SUBMIT = {"prompt": "a lighthouse at dawn", "format": "png", "width": 1024, "height": 1024}
USER = {"X-Gateway-Secret": "dev-gateway-secret", "X-User-Id": "demo-user"}
DEMO_BALANCE = 500  # demo-user's opening balance in the emulator's seed
UP = "Ctrl-C stops everything."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url(name: str) -> str:
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def pg_connect(url: str) -> Any:
    parts = make_url(url)
    connection = psycopg2.connect(
        host=parts.host,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname=parts.database,
    )
    connection.autocommit = True
    return connection


class LocalStack:
    """``creativeflow dev`` in a directory of its own, on ports, a database and queues of its
    own, started and stopped (Ctrl-C) as often as a test wants."""

    def __init__(self, directory: Path, settings: dict[str, str]) -> None:
        self.directory = directory
        self.settings = settings
        self.api = f"http://127.0.0.1:{settings['API_PORT']}"
        self.odoo = settings["ODOO_URL"]
        self._runs = 0

    @contextmanager
    def running(self, *flags: str) -> Iterator[str]:
        """Yield the banner once the stack is up; stop it with SIGINT, as Ctrl-C does."""
        self._runs += 1
        log = self.directory / f"stack-{self._runs}.log"
        with log.open("w") as errors:
            process = subprocess.Popen(
                command("dev", *flags),
                cwd=self.directory,
                env=environment(**self.settings),
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        watchdog = threading.Timer(GIVE_UP_SECONDS, process.kill)
        watchdog.start()
        try:
            banner = self._banner(process, log)
            yield banner
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=GIVE_UP_SECONDS)
            watchdog.cancel()
        assert process.returncode == 0, log.read_text()[-3000:]

    @staticmethod
    def _banner(process: subprocess.Popen[str], log: Path) -> str:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == UP:
                return "".join(lines)
        raise AssertionError(f"the stack did not come up:\n{log.read_text()[-3000:]}")

    def submit(self) -> dict[str, Any]:
        answer = httpx.post(f"{self.api}/api/v1/generations", json=SUBMIT, headers=USER)
        assert answer.status_code == 202, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def balance(self) -> int:
        answer = httpx.get(f"{self.api}/api/v1/credits", headers=USER)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["balance"])

    def requests(self) -> int:
        answer = httpx.get(f"{self.api}/api/v1/generations", headers=USER)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total"])

    def odoo_ledger(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.odoo}/__emulator__/ledger").json()["entries"]  # type: ignore[no-any-return]


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[LocalStack]:
    name = f"cf_devstack_{uuid.uuid4().hex[:10]}"
    rabbit = unique_config()
    settings = {
        "ENVIRONMENT": "development",
        "API_PORT": str(free_port()),
        "ODOO_URL": f"http://127.0.0.1:{free_port()}",
        "NOTIFICATION_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "ODOO_API_KEY": "",
        "ODOO_PASSWORD": "",
        "DATABASE_URL": database_url(name),
        "RABBITMQ_URL": RABBITMQ_URL,
        "RABBITMQ_GENERATION_EXCHANGE": rabbit.exchange,
        "RABBITMQ_N8N_JOB_QUEUE": rabbit.queue,
        "RABBITMQ_DEAD_LETTER_EXCHANGE": rabbit.dead_letter_exchange,
        "RABBITMQ_DEAD_LETTER_QUEUE": rabbit.dead_letter_queue,
        "RABBITMQ_N8N_CANCEL_QUEUE": rabbit.cancel_queue,
        **unique_events_env(rabbit),
        "RABBITMQ_N8N_RESULTS_QUEUE": f"{rabbit.queue}.results",
        "RECOVERY_INTERVAL_SECONDS": "0",
        "LOG_FORMAT": "text",
    }
    try:
        yield LocalStack(tmp_path, settings)
    finally:
        drop_database(name)
        delete_topology(rabbit)
        with channel() as ch:
            for suffix in ("", ".dead", ".retry"):
                ch.queue_delete(f"{rabbit.queue}.results{suffix}")


def test_a_restart_keeps_the_emulated_ledger_and_reconciliation_stays_clean(
    local_stack: LocalStack,
) -> None:
    with local_stack.running() as banner:
        assert "creativeflow reconcile" in banner and "--reset" in banner
        local_stack.submit()
        charged = DEMO_BALANCE - local_stack.balance()
        ledger = local_stack.odoo_ledger()
    assert charged > 0 and [e["operation"] for e in ledger] == ["debit"]
    assert (local_stack.directory / ".devstack" / stack.EMULATOR_STATE).exists()

    with local_stack.running():
        assert local_stack.balance() == DEMO_BALANCE - charged
        assert local_stack.odoo_ledger() == ledger
        # the operator command, as the banner gives it: no Odoo credentials, the same settings
        now = datetime.now(UTC)
        window = ["--since", (now - timedelta(hours=1)).isoformat()]
        window += ["--until", (now + timedelta(minutes=1)).isoformat()]
        books = run_cli("reconcile", *window, cwd=local_stack.directory, **local_stack.settings)
    assert books.code == 0, books.err
    report = json.loads(books.out)
    assert (report["ledger_entries"], report["requests"], report["mismatches"]) == (1, 1, [])


def test_reset_empties_the_tracking_database_and_the_emulated_ledger_together(
    local_stack: LocalStack,
) -> None:
    with local_stack.running():
        local_stack.submit()
        assert local_stack.requests() == 1

    with local_stack.running("--reset"):
        assert local_stack.requests() == 0
        assert local_stack.odoo_ledger() == []
        assert local_stack.balance() == DEMO_BALANCE


def test_an_unreadable_emulator_state_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    state = tmp_path / ".devstack" / stack.EMULATOR_STATE
    state.parent.mkdir()
    state.write_text('{"accounts": [{"nope": 1}], "entries": []}')
    outcome = run_cli(
        "dev",
        cwd=tmp_path,
        API_PORT=str(free_port()),
        ODOO_URL=f"http://127.0.0.1:{free_port()}",
        NOTIFICATION_SERVICE_URL=f"http://127.0.0.1:{free_port()}",
    )
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1, outcome.err
    assert str(Path(".devstack") / stack.EMULATOR_STATE) in outcome.err
    assert "--reset" in outcome.err and "Traceback" not in outcome.err


# -- the state file ---------------------------------------------------------------------------


def _debit(emulator: OdooEmulator, user: str, request_id: str) -> dict[str, Any]:
    with xmlrpc.client.ServerProxy(f"{emulator.url}/xmlrpc/2/object") as models:
        return models.execute_kw(  # type: ignore[no-any-return]
            emulator.database,
            2,
            stack.EMULATOR_PASSWORD,
            "creativeflow.credit.service",
            "debit",
            [user, request_id, "samples", PNG],
        )


def test_the_emulated_ledger_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "odoo-emulator.json"
    with OdooEmulator().start() as first:
        first.add_account("dev-1", tier="pro", balance=50)
        receipt = _debit(first, "dev-1", "r-1")
        assert first.save_state(state) is True
    with OdooEmulator() as second:
        assert second.load_state(state)
        assert second.balance("dev-1") == 50 - receipt["amount"]
        assert [(e["request_id"], e["operation"]) for e in second.ledger()] == [("r-1", "debit")]
        # the same debit is still a replay: the restart did not forget what was charged
        again = _debit(second, "dev-1", "r-1")
        assert again["replay"] is True and again["entry_id"] == receipt["entry_id"]


def test_the_state_file_is_replaced_whole_and_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "state" / "odoo-emulator.json"
    with OdooEmulator() as emulator:
        assert emulator.save_state(path) is True
        first = path.stat().st_mtime_ns, path.stat().st_ino
        assert emulator.save_state(path) is False  # nothing changed: not written again
        assert (path.stat().st_mtime_ns, path.stat().st_ino) == first
        _debit(emulator, "demo-user", "r-1")
        assert emulator.save_state(path) is True
        # written beside and renamed over: a new file, never the old one half rewritten
        assert path.stat().st_ino != first[1]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert json.loads(path.read_text())["format"] == 1


def test_a_fresh_emulator_has_no_state_to_load(tmp_path: Path) -> None:
    assert OdooEmulator().load_state(tmp_path / "absent.json") is False


@pytest.mark.parametrize("text", ["", "[]", '{"format": 2}', '{"accounts": [{"x": 1}]}'])
def test_a_state_that_cannot_be_read_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "odoo-emulator.json"
    path.write_text(text)
    with pytest.raises(StateUnreadable, match="--reset") as refused:
        StateFile(path).load(OdooEmulator()._ledger)
    assert str(path) in str(refused.value)


# -- ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["dev"], "API_PORT"),
        (["dev"], "ODOO_URL"),
        (["dev"], "NOTIFICATION_SERVICE_URL"),
        (["serve"], "API_PORT"),
    ],
)
def test_a_port_in_use_is_one_line_naming_it_and_its_setting(
    tmp_path: Path, argv: list[str], setting: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = {name: free_port() for name in ("API_PORT", "ODOO_URL", "NOTIFICATION_SERVICE_URL")}
        ports[setting] = taken
        outcome = run_cli(
            *argv,
            cwd=tmp_path,
            API_HOST="127.0.0.1",
            API_PORT=str(ports["API_PORT"]),
            ODOO_URL=f"http://127.0.0.1:{ports['ODOO_URL']}",
            NOTIFICATION_SERVICE_URL=f"http://127.0.0.1:{ports['NOTIFICATION_SERVICE_URL']}",
        )
    assert outcome.code == 2
    assert len(outcome.err_lines) == 1, outcome.err
    assert f"port {taken} is in use" in outcome.err and setting in outcome.err
    assert "OSError" not in outcome.err and "Traceback" not in outcome.err


# -- migrate ----------------------------------------------------------------------------------


def test_migrate_creates_a_missing_tracking_database(tmp_path: Path) -> None:
    name = f"cf_migrate_{uuid.uuid4().hex[:10]}"
    try:
        outcome = run_cli("migrate", cwd=tmp_path, DATABASE_URL=database_url(name))
        assert outcome.code == 0, outcome.err
        connection = pg_connect(database_url(name))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM alembic_version")
                assert cursor.fetchone() == (1,)
        finally:
            connection.close()
        again = run_cli("migrate", cwd=tmp_path, DATABASE_URL=database_url(name))
        assert again.code == 0, again.err
    finally:
        drop_database(name)


def test_migrate_says_what_to_run_when_the_role_may_not_create_the_database(
    tmp_path: Path,
) -> None:
    role, name = f"cf_role_{uuid.uuid4().hex[:8]}", f"cf_missing_{uuid.uuid4().hex[:8]}"
    admin = pg_connect(POSTGRES_ADMIN_URL)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-not-shown-3f9' NOCREATEDB")
        url = make_url(database_url(name)).set(username=role, password="pw-not-shown-3f9")
        outcome = run_cli(
            "migrate", cwd=tmp_path, DATABASE_URL=url.render_as_string(hide_password=False)
        )
        assert outcome.code == 2
        assert len(outcome.err_lines) == 1, outcome.err
        assert f"createdb -h {url.host} -p {url.port or 5432} -O {role} {name}" in outcome.err
        assert "pw-not-shown-3f9" not in outcome.err
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP ROLE IF EXISTS {role}")
        admin.close()


def _stream_until(block: str, event: str) -> list[str]:
    """The lines a pasted streaming ``curl`` prints, up to the first event of type ``event``."""
    process = subprocess.Popen(
        ["bash", "-euc", "exec " + block],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, process.kill)
    watchdog.start()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if lines[-1] == f"event: {event}":
                break
    finally:
        watchdog.cancel()
        process.kill()
        process.communicate()
    return lines


def _banner_commands(banner: str) -> list[str]:
    """The blocks of ``curl`` commands the banner tells a first-time user to paste."""
    tried = banner.split("Try it", 1)[1].split("Recovery and the books", 1)[0]
    blocks = [block.strip() for block in tried.split("\n\n")]
    return [block for block in blocks if block.startswith("curl")]


def test_every_curl_command_of_the_banner_works_as_pasted(local_stack: LocalStack) -> None:
    with local_stack.running() as banner:
        everything = _banner_commands(banner)
        # a command about one request names it <id>, which the user replaces
        blocks = [block for block in everything if "<id>" not in block]
        about_one = [block for block in everything if "<id>" in block]
        answers = [
            subprocess.run(
                # as pasted in a shell, with curl failing on an HTTP error status
                ["bash", "-euc", 'curl() { command curl --fail-with-body "$@"; echo; }\n' + block],
                capture_output=True,
                text=True,
                timeout=30,
            )
            for block in blocks
        ]
        submitted = json.loads(answers[1].stdout)["id"]
        streamed = [_stream_until(b.replace("<id>", submitted), "samples_ready") for b in about_one]
        balance = local_stack.balance()
    assert [b.split("/api/v1/generations/<id>")[1].split()[0] for b in about_one] == ["/events"]
    events = [line for line in streamed[0] if line.startswith("event: ")]
    assert events[0] == "event: status_changed" and events[-1] == "event: samples_ready"
    assert "event: credits_charged" in events
    pasted = "\n".join(blocks)
    for path in ("/generations/quote", "/api/v1/generations ", "/credits ", "/credits/history"):
        assert path in pasted + " ", f"the banner shows no {path.strip()}"
    assert [(a.returncode, a.stderr) for a in answers] == [(0, "")] * len(blocks)
    outputs = [json.loads(line) for a in answers for line in a.stdout.splitlines() if line]
    quote = outputs[0]
    assert (quote["allowed"], quote["costs"]["samples"]) == (True, 6)
    assert balance == DEMO_BALANCE - 6  # the quote charged nothing, the submit its samples
    history = outputs[-1]
    assert [item["change"] for item in history["items"]] == [-6]


def test_with_results_queue_the_simulator_answers_on_the_queue(local_stack: LocalStack) -> None:
    """``--results-queue``: n8n's results come by the results queue; with nobody listening at
    the callback URL, the request still reaches its samples."""
    local_stack.settings["N8N_CALLBACK_BASE_URL"] = "http://127.0.0.1:1"
    with local_stack.running("--results-queue") as banner:
        assert (
            f"answering on the results queue {local_stack.settings['RABBITMQ_N8N_RESULTS_QUEUE']}"
            in banner
        )
        request_id = local_stack.submit()["id"]

        def status() -> str:
            answer = httpx.get(f"{local_stack.api}/api/v1/generations/{request_id}", headers=USER)
            return str(answer.json()["status"])

        deadline = time.monotonic() + 30
        while status() != "AWAITING_SELECTION" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status() == "AWAITING_SELECTION"
        ready = httpx.get(f"{local_stack.api}/readyz").json()
        assert ready["checks"]["results_queue"] is True


def test_the_local_stack_speaks_json2_when_asked(local_stack: LocalStack) -> None:
    # JSON-2 exists from Odoo 19 on: the emulator then claims 19.0, so the API's version check
    # passes and a submit is debited over /json/2
    local_stack.settings["ODOO_PROTOCOL"] = "json2"
    with local_stack.running():
        version = httpx.post(
            f"{local_stack.odoo}/web/webclient/version_info", json={"jsonrpc": "2.0", "params": {}}
        ).json()["result"]
        request = local_stack.submit()
        balance = local_stack.balance()
    assert version["server_version_info"][0] == 19
    assert request["status"] == "PROCESSING_SAMPLES"
    assert balance == DEMO_BALANCE - 8  # four samples by default, two credits each


def _stored_asset_block(banner: str) -> str:
    """The banner's command that downloads the newest request's first stored sample."""
    after = banner.split("Recovery and the books", 1)[1]
    [block] = [b.strip() for b in after.split("\n\n") if b.strip().startswith("curl")]
    return block


def test_the_banner_downloads_a_stored_sample_the_simulator_made(local_stack: LocalStack) -> None:
    with local_stack.running() as banner:
        assert local_stack.settings["S3_ENDPOINT_URL"] in banner
        request = local_stack.submit()
        deadline = time.monotonic() + GIVE_UP_SECONDS
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = httpx.get(
                f"{local_stack.api}/api/v1/generations/{request['id']}", headers=USER
            ).json()
            samples = view["samples"]
            if samples and all(s["url_source"] == "storage" for s in samples):
                break
            time.sleep(0.2)
        first = view["samples"][0]
        assert first["url_source"] == "storage", view
        pasted = subprocess.run(
            ["bash", "-euc", _stored_asset_block(banner)],
            cwd=local_stack.directory,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert pasted.returncode == 0, pasted.stderr
    status, content_type, size, _ = pasted.stdout.split()
    saved = (local_stack.directory / "sample.png").read_bytes()
    assert (status, content_type, int(size)) == ("200", "image/png", len(saved))
    assert saved.startswith(b"\x89PNG\r\n\x1a\n")
    assert hashlib.sha256(saved).hexdigest() == first["checksum_sha256"]
