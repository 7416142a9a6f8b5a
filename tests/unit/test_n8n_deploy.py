"""The compose stack's n8n is wired to the orchestrator the way docs/n8n says: a pinned n8n
version (the one the workflow was run on, not ``latest``), the workflow of the orchestrator's own
``DISPATCH_MODE`` imported under the ids the workflow files carry, the webhook URL on the path the
webhook workflow listens on, and on each side the same secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy/docker-compose.yml"
IMPORT_SCRIPT = ROOT / "deploy/n8n/n8n-import.sh"
QUEUE_WORKFLOW = ROOT / "docs/n8n/creativeflow-generation.json"
WEBHOOK_WORKFLOW = ROOT / "docs/n8n/creativeflow-generation-webhook.json"
DEFAULT = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]  # type: ignore[no-any-return]


def env(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in service["environment"].items()}


def default_of(value: str) -> tuple[str, str]:
    """``${NAME:-default}`` as (NAME, default)."""
    found = DEFAULT.match(value)
    assert found, f"{value!r} is not a ${{NAME:-default}} substitution"
    return found["name"], found["default"]


def test_n8n_runs_a_pinned_version_the_workflow_was_run_on(
    services: dict[str, dict[str, Any]],
) -> None:
    images = {services[name]["image"] for name in ("n8n", "n8n-import")}
    assert len(images) == 1, "the import and the server must be the same n8n"
    [image] = images
    repository, _, tag = image.partition(":")
    assert repository == "n8nio/n8n"
    variable, version = default_of(tag)
    assert variable == "N8N_IMAGE_TAG"
    assert re.fullmatch(r"1\.123\.\d+", version), f"{version}: not the measured 1.123.x"
    assert f"**{version}**" in (ROOT / "docs/n8n/README.md").read_text()


def test_the_workflow_of_the_orchestrators_dispatch_mode_is_imported(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator, importer = env(services["orchestrator"]), env(services["n8n-import"])
    assert orchestrator["DISPATCH_MODE"] == importer["DISPATCH_MODE"]
    assert default_of(orchestrator["DISPATCH_MODE"]) == ("DISPATCH_MODE", "rabbitmq")
    script = IMPORT_SCRIPT.read_text()
    chosen = dict(re.findall(r"workflow=(\S+) id=(\S+)", script))
    assert chosen == {
        WEBHOOK_WORKFLOW.name: json.loads(WEBHOOK_WORKFLOW.read_text())["id"],
        QUEUE_WORKFLOW.name: json.loads(QUEUE_WORKFLOW.read_text())["id"],
    }
    triggers = [
        n
        for n in json.loads(QUEUE_WORKFLOW.read_text())["nodes"]
        if n["type"] == "n8n-nodes-base.rabbitmqTrigger"
    ]
    assert len(triggers) == 2  # the jobs and the cancellations
    for trigger in triggers:
        assert f'id: "{trigger["credentials"]["rabbitmq"]["id"]}"' in script


def test_webhook_dispatch_reaches_the_webhook_workflow_with_its_secret(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator, n8n = env(services["orchestrator"]), env(services["n8n"])
    url = urlsplit(orchestrator["N8N_WEBHOOK_URL"])
    [webhook] = [
        n
        for n in json.loads(WEBHOOK_WORKFLOW.read_text())["nodes"]
        if n["type"] == "n8n-nodes-base.webhook"
    ]
    assert (url.hostname, url.port) == ("n8n", 5678)
    assert url.path == f"/webhook/{webhook['parameters']['path']}"  # the production URL
    assert default_of(orchestrator["N8N_WEBHOOK_SECRET"]) == default_of(
        n8n["CREATIVEFLOW_JOB_SECRET"]
    )


def test_n8n_signs_callbacks_with_a_secret_the_orchestrator_accepts(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator, n8n = env(services["orchestrator"]), env(services["n8n"])
    _, accepted = default_of(orchestrator["N8N_CALLBACK_SECRETS"])
    _, signing = default_of(n8n["CREATIVEFLOW_CALLBACK_SECRET"])
    assert signing in accepted.split(",")
    # the workflow reads its secrets with $env: allowed on n8n 1.x when unset, not on 2.x
    assert n8n["N8N_BLOCK_ENV_ACCESS_IN_NODE"] == "false"


def test_one_toggle_asks_n8n_for_error_details_and_the_orchestrator_to_log_them(
    services: dict[str, dict[str, Any]],
) -> None:
    orchestrator, n8n = env(services["orchestrator"]), env(services["n8n"])
    logging = default_of(orchestrator["ENABLE_DETAILED_N8N_ERROR_LOGGING"])
    assert default_of(n8n["CREATIVEFLOW_DETAILED_N8N_ERRORS"]) == logging
    assert logging == ("ENABLE_DETAILED_N8N_ERROR_LOGGING", "false")


def test_one_toggle_sends_results_by_queue_on_both_sides(
    services: dict[str, dict[str, Any]],
) -> None:
    """The orchestrator consumes the results queue exactly when n8n's workflow publishes there,
    and the workflow's default exchange and routing key are the orchestrator's."""
    orchestrator, n8n = env(services["orchestrator"]), env(services["n8n"])
    toggle = default_of(orchestrator["ENABLE_N8N_RESULTS_QUEUE"])
    assert default_of(n8n["CREATIVEFLOW_RESULTS_BY_QUEUE"]) == toggle
    assert toggle == ("ENABLE_N8N_RESULTS_QUEUE", "false")
    for path in (QUEUE_WORKFLOW, WEBHOOK_WORKFLOW):
        [publish] = [
            n for n in json.loads(path.read_text())["nodes"] if n["name"] == "Publish result"
        ]
        parameters = publish["parameters"]
        exchange = orchestrator["RABBITMQ_GENERATION_EXCHANGE"]
        routing_key = orchestrator["RABBITMQ_N8N_RESULTS_ROUTING_KEY"]
        assert parameters["exchange"].endswith(f"|| '{exchange}' }}}}"), path.name
        assert parameters["routingKey"].endswith(f"|| '{routing_key}' }}}}"), path.name
