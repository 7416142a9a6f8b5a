"""The whole product on one machine: migrations, the Odoo emulator, the n8n simulator, the
notification sink, an S3 server for the assets and the API, until Ctrl-C.

The settings decide where each piece listens: the emulator takes ``ODOO_URL``'s port, the sink
``NOTIFICATION_SERVICE_URL``'s, the API ``API_PORT``; a port already taken is refused before
anything starts, naming the setting. PostgreSQL and RabbitMQ are the real ones. The emulated
Odoo's accounts and ledger are kept in ``.devstack/`` (of the current directory) between runs,
as the tracking database is; ``--reset`` empties both together. ``--real-odoo`` and
``--real-n8n`` leave the emulator or the simulator out, for a stack against a real Odoo or a real
n8n. A stand-in only takes the place of a URL on this machine: a ``NOTIFICATION_SERVICE_URL``
elsewhere is used as it is, an ``ODOO_URL`` or ``N8N_WEBHOOK_URL`` elsewhere needs the flag.
The S3 server (moto's: no MinIO server installs here) listens on ``S3_ENDPOINT_URL``'s port
(``http://127.0.0.1:9000`` when it is not set) with the bucket created; the simulator's assets
are real small images on it, behind provider-style signed URLs. A ``S3_ENDPOINT_URL`` elsewhere
is used as it is (and the simulator's asset URLs then lead nowhere).
With ``ENABLE_N8N_RESULTS_QUEUE=true`` (or ``--results-queue``) the simulator answers on the
results queue the API consumes, and no result comes back over HTTP.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import uvicorn
from sqlalchemy.engine import make_url

from creativeflow.adapters.tracking.databases import drop_database, ensure_database
from creativeflow.adapters.tracking.migrate import upgrade
from creativeflow.api.serving import Server
from creativeflow.listening import require_free_port
from creativeflow.settings import Settings
from creativeflow_devstack.n8n_simulator import (
    AnswerConfig,
    N8nSimulator,
    N8nWebhookSimulator,
    ResultsRoute,
    SimulatorConfig,
    WebhookSimulatorConfig,
)
from creativeflow_devstack.notification_sink import create_sink_app
from creativeflow_devstack.object_storage import (
    ProviderAssets,
    S3Endpoint,
    ensure_bucket,
    s3_server,
)
from creativeflow_devstack.odoo_emulator import OdooEmulator
from creativeflow_devstack.odoo_emulator.persistence import StateFile, StateUnreadable
from creativeflow_devstack.odoo_emulator.versions import DEFAULT_VERSION

JSON2_VERSION = "19.0"  # the first Odoo serving /json/2

log = logging.getLogger(__name__)

# the technical user of the emulator's default seed (seed.json)
EMULATOR_LOGIN = "orchestrator"
EMULATOR_PASSWORD = "orchestrator"
EMULATOR_API_KEY = "cf0de7e1a7f4b2c9d8e6f5a4b3c2d1e0f9a8b7c0"  # JSON-2 takes keys only
# kept between runs (gitignored): the emulated Odoo's accounts and ledger
STATE_DIR = Path(".devstack")
EMULATOR_STATE = "odoo-emulator.json"
SAVE_EVERY_SECONDS = 2.0
# where the stack's S3 server listens when S3_ENDPOINT_URL is not set
LOCAL_S3_ENDPOINT = "http://127.0.0.1:9000"
_THIS_MACHINE = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})


class StackRefused(RuntimeError):
    """The local stack cannot start as configured; the message says what to change."""


@contextmanager
def serve_in_thread(app: object, host: str, port: int, name: str) -> Iterator[uvicorn.Server]:
    """An ASGI app served by uvicorn in a background thread for the ``with`` block."""
    server = Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{name} could not start on {host}:{port}")
        threading.Event().wait(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass(frozen=True, slots=True)
class LocalStackOptions:
    emulate_odoo: bool = True  # False: the Odoo at ODOO_URL, with its configured credentials
    simulate_n8n: bool = True  # False: a real n8n consumes the jobs and calls back
    reset: bool = False  # empty the tracking database and the emulator's state together
    state_dir: Path = STATE_DIR


def _emulated_version(settings: Settings) -> str:
    """The Odoo the emulator claims to be: 18.0 (the addon's), or 19.0 for ``ODOO_PROTOCOL=json2``,
    which only Odoo 19 and later serve."""
    return JSON2_VERSION if settings.odoo_protocol == "json2" else DEFAULT_VERSION


def with_emulator_user(settings: Settings) -> Settings:
    """The emulator's technical user when no Odoo credentials are set (its API key for JSON-2,
    which takes no password); else as configured."""
    if settings.odoo_secret.get_secret_value():
        return settings
    from pydantic import SecretStr

    secret = (
        {"odoo_api_key": SecretStr(EMULATOR_API_KEY)}
        if settings.odoo_protocol == "json2"
        else {"odoo_password": SecretStr(EMULATOR_PASSWORD)}
    )
    return settings.model_copy(update={"odoo_login": EMULATOR_LOGIN, **secret})


def local_settings(settings: Settings, api_port: int, *, emulate_odoo: bool = True) -> Settings:
    """Fill what the emulator and the simulator need when the environment does not say
    otherwise: the emulator's technical user, and callbacks to this API's port."""
    if "n8n_callback_base_url" not in settings.model_fields_set:
        settings = settings.model_copy(
            update={"n8n_callback_base_url": f"http://127.0.0.1:{api_port}"}
        )
    if not settings.storage_enabled:
        # the stack runs an S3 server: the assets are copied as in production
        settings = settings.model_copy(update={"s3_endpoint_url": LOCAL_S3_ENDPOINT})
    return with_emulator_user(settings) if emulate_odoo else settings


def _s3_endpoint(settings: Settings) -> S3Endpoint:
    return S3Endpoint(
        url=settings.s3_endpoint_url,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key.get_secret_value(),
        region=settings.s3_region,
    )


def _port(url: str) -> int:
    return urlsplit(url).port or 80


def on_this_machine(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in _THIS_MACHINE or host.startswith("127.")


def _check_stand_ins(settings: Settings, options: LocalStackOptions) -> None:
    """A stand-in listens on its URL's port here: a URL elsewhere would be called for real."""
    if options.emulate_odoo and not on_this_machine(settings.odoo_url):
        raise StackRefused(
            f"ODOO_URL is {settings.odoo_url}, not this machine, where the emulator listens: "
            "add --real-odoo to use that Odoo, or set ODOO_URL=http://127.0.0.1:8069"
        )
    webhook = settings.dispatch_mode == "webhook"
    if options.simulate_n8n and webhook and not on_this_machine(settings.n8n_webhook_url):
        raise StackRefused(
            f"N8N_WEBHOOK_URL is {settings.n8n_webhook_url}, not this machine, where the n8n "
            "simulator listens: add --real-n8n to use that n8n, or point it at 127.0.0.1"
        )


def _check_ports(settings: Settings, api_port: int, options: LocalStackOptions) -> None:
    wanted = [(settings.api_host, api_port, "API_PORT (or --port)")]
    if on_this_machine(settings.notification_service_url):
        wanted.append(
            ("127.0.0.1", _port(settings.notification_service_url), "NOTIFICATION_SERVICE_URL")
        )
    if options.emulate_odoo:
        wanted.append(("127.0.0.1", _port(settings.odoo_url), "ODOO_URL"))
    if on_this_machine(settings.s3_endpoint_url):
        wanted.append(("127.0.0.1", _port(settings.s3_endpoint_url), "S3_ENDPOINT_URL"))
    if options.simulate_n8n and settings.dispatch_mode == "webhook":
        wanted.append(("127.0.0.1", _port(settings.n8n_webhook_url), "N8N_WEBHOOK_URL"))
    for host, port, setting in wanted:
        require_free_port(host, port, setting)


def _reset(settings: Settings, state: StateFile) -> None:
    """The tracking database and the emulated ledger describe the same credits: both go."""
    url = make_url(settings.database_url)
    name = url.database or ""
    drop_database(url.set(database="postgres").render_as_string(hide_password=False), name)
    state.remove()
    log.info("reset: tracking database %s dropped, emulator state %s removed", name, state.path)


def run_local_stack(
    settings: Settings, api_port: int, options: LocalStackOptions | None = None
) -> int:
    from creativeflow.api.app import create_app

    options = options or LocalStackOptions()
    settings = local_settings(settings, api_port, emulate_odoo=options.emulate_odoo)
    _check_stand_ins(settings, options)
    _check_ports(settings, api_port, options)
    state = StateFile(options.state_dir / EMULATOR_STATE)
    if options.reset:
        _reset(settings, state)
    emulator = (
        OdooEmulator(server_version=_emulated_version(settings)) if options.emulate_odoo else None
    )
    if emulator is not None:
        try:
            if emulator.load_state(state.path):
                log.info("emulated Odoo: accounts and ledger taken back from %s", state.path)
        except StateUnreadable as unreadable:
            raise StackRefused(str(unreadable)) from None
    if ensure_database(settings.database_url):
        log.info("created the tracking database")
    upgrade(settings.database_url)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with ExitStack() as stack:
        provider: ProviderAssets | None = None
        if on_this_machine(settings.s3_endpoint_url):
            # objects live in the server's memory: a restart starts with an empty bucket
            stack.enter_context(s3_server("127.0.0.1", _port(settings.s3_endpoint_url)))
            endpoint = _s3_endpoint(settings)
            ensure_bucket(endpoint, settings.s3_bucket)
            provider = ProviderAssets(endpoint)
        if emulator is not None:
            stack.enter_context(emulator.start("127.0.0.1", _port(settings.odoo_url)))
            stack.callback(emulator.save_state, state.path)
        if on_this_machine(settings.notification_service_url):
            stack.enter_context(
                serve_in_thread(
                    create_sink_app(),
                    "127.0.0.1",
                    _port(settings.notification_service_url),
                    "sink",
                )
            )
        stack.enter_context(
            serve_in_thread(create_app(settings), settings.api_host, api_port, "api")
        )
        if options.simulate_n8n:
            stack.enter_context(_n8n_simulator(settings, provider))
        print(_banner(settings, api_port, emulator.url if emulator else None, options), flush=True)
        # the emulated ledger is saved as it goes, so a killed stack loses seconds, not the day
        while not stop.wait(SAVE_EVERY_SECONDS):
            if emulator is not None:
                emulator.save_state(state.path)
        print("\nstopping the local stack ...", flush=True)
    return 0


def _n8n_simulator(
    settings: Settings, provider: ProviderAssets | None = None
) -> N8nSimulator | N8nWebhookSimulator:
    """The n8n stand-in for the dispatch mode in use (a queue consumer, or a webhook), not yet
    started: entering it starts it. With ``provider``, its assets are real images behind
    provider-style signed URLs on the stack's S3 server."""
    publish = provider.publish if provider is not None else None
    if settings.dispatch_mode == "webhook":
        webhook = urlsplit(settings.n8n_webhook_url)
        return N8nWebhookSimulator(
            WebhookSimulatorConfig(
                job_secret=settings.n8n_webhook_secret.get_secret_value(),
                answering=AnswerConfig(
                    secret=settings.callback_secrets[0],
                    delay=1.0,
                    results_route=results_route(settings),
                    publish_asset=publish,
                ),
                host=webhook.hostname or "127.0.0.1",
                port=webhook.port or 80,
                path=webhook.path or "/",
            )
        )
    return N8nSimulator(
        SimulatorConfig(
            rabbitmq_url=settings.rabbitmq_url,
            secret=settings.callback_secrets[0],
            queue=settings.rabbitmq_queue,
            cancel_queue=settings.rabbitmq_cancel_queue,
            delay=1.0,
            results_route=results_route(settings),
            publish_asset=publish,
        )
    )


def results_route(settings: Settings) -> ResultsRoute | None:
    """With ``ENABLE_N8N_RESULTS_QUEUE`` the simulator answers on the results queue, as the n8n
    workflow does with ``CREATIVEFLOW_RESULTS_BY_QUEUE``; otherwise it calls back over HTTP."""
    if not settings.enable_n8n_results_queue:
        return None
    return ResultsRoute(
        rabbitmq_url=settings.rabbitmq_url,
        exchange=settings.rabbitmq_exchange,
        routing_key=settings.rabbitmq_results_routing_key,
    )


def _banner(
    settings: Settings, api_port: int, odoo_url: str | None, options: LocalStackOptions
) -> str:
    api = f"http://127.0.0.1:{api_port}"
    gateway = settings.gateway_shared_secret.get_secret_value()
    odoo = (
        f"Odoo emulator     {odoo_url}   (ledger: {odoo_url}/__emulator__/ledger; kept in "
        f"{options.state_dir / EMULATOR_STATE}, --reset starts afresh)"
        if odoo_url
        else f"Odoo              {settings.odoo_url} (real, as {settings.odoo_login})"
    )
    answering = (
        f"answering on the results queue {settings.rabbitmq_results_queue}"
        if settings.enable_n8n_results_queue
        else f"calling back {settings.n8n_callback_base_url}"
    )
    n8n = (
        f"n8n simulator     {_n8n_source(settings)}, {answering}"
        if options.simulate_n8n
        else f"n8n               not simulated: a real n8n {_n8n_source(settings)}, {answering}"
    )
    notifications = (
        f"Notification sink {settings.notification_service_url}/api/v1/notifications"
        if on_this_machine(settings.notification_service_url)
        else f"Notifications     {settings.notification_service_url} (real)"
    )
    storage = (
        f"S3 server         {settings.s3_endpoint_url}   (bucket {settings.s3_bucket}; the "
        "provider's images in provider-assets; kept in memory until Ctrl-C)"
        if on_this_machine(settings.s3_endpoint_url)
        else f"Object storage    {settings.s3_endpoint_url} (real, bucket {settings.s3_bucket})"
    )
    events = (
        f"Result events     exchange {settings.rabbitmq_events_exchange} (bind a queue with "
        f"generation.#; events nobody binds wait in {settings.rabbitmq_events_unrouted_queue})"
        if settings.events_enabled
        else "Result events     off (EVENTS_ENABLED): they wait in the outbox"
    )
    command = _command()
    return f"""
CreativeFlow AI Generation Orchestrator: the local stack is up.

  API               {api}   (OpenAPI: {api}/docs)
  {odoo}
  {notifications}
  {storage}
  {n8n}
  {events}

Try it (user demo-user starts with 500 credits on the pro tier). What it would cost, nothing
charged:

  curl -s -X POST {api}/api/v1/generations/quote \\
    -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user' \\
    -H 'Content-Type: application/json' \\
    -d '{{"prompt": "a lighthouse at dawn", "format": "png",
         "width": 1024, "height": 1024, "samples": 3}}'

Then submit it (it runs on the plan's default AI model; add "model": "creativeflow-advanced-v1",
or another of the models /api/v1/credits lists, to choose one):

  curl -s -X POST {api}/api/v1/generations \\
    -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user' \\
    -H 'Content-Type: application/json' \\
    -d '{{"prompt": "a lighthouse at dawn", "format": "png",
         "width": 1024, "height": 1024, "samples": 3}}'

Follow it live, as Server-Sent Events (each status, the samples, the final asset, every credit
charged or refunded; the stream ends when the request has), with the id the submit answered:

  curl -N {api}/api/v1/generations/<id>/events \\
    -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user'

  curl -s {api}/api/v1/generations -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user'
  curl -s {api}/api/v1/credits -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user'
  curl -s {api}/api/v1/credits/history -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user'

Recovery and the books, from another terminal in this directory (with the same environment:
with ENVIRONMENT=development and no Odoo credentials they use the emulator's user):

  {command} sweep       (one recovery sweep)
  {command} reconcile   (tracking against the ledger, the 24 hours ending 5 minutes ago)

The samples and the final asset are copied to the S3 server a moment after n8n reports them:
the request view then gives a signed link to our copy (url_source "storage", valid until
url_expires_at; read the view again for a fresh one). The newest request's first sample, saved
to sample.png:

  curl -s '{api}/api/v1/generations?limit=1' \
    -H 'X-Gateway-Secret: {gateway}' -H 'X-User-Id: demo-user' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["samples"][0]["url"])' \
    | xargs curl -s -o sample.png -w '%{{http_code}} %{{content_type}} %{{size_download}} bytes\n'

Ctrl-C stops everything.
"""


def _command() -> str:
    """How a shell in this directory runs the entry point this stack runs from."""
    entry = Path(sys.executable).parent / "creativeflow"
    try:
        relative = os.path.relpath(entry)
    except ValueError:
        return "creativeflow"
    return relative if entry.exists() and not relative.startswith("..") else "creativeflow"


def _n8n_source(settings: Settings) -> str:
    if settings.dispatch_mode == "webhook":
        return f"receiving jobs at {settings.n8n_webhook_url}"
    return f"consuming {settings.rabbitmq_queue}"
