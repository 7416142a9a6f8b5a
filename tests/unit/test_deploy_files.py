"""The deployment files hold together without Docker: the compose file parses and points only at
files that exist, the orchestrator gets only settings that .env.example documents, Prometheus and
Grafana are wired to each other, every dashboard panel and alert asks for metrics the service
exposes, and the image installs the project the way CI does."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from creativeflow.observability.metrics import Metrics

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DASHBOARD = DEPLOY / "grafana/dashboards/creativeflow.json"
WORKFLOW = ROOT / "docs/n8n/creativeflow-generation.json"
METRIC = re.compile(r"\bcreativeflow_[a-z0-9_]+\b")
SETTING = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def exposed() -> frozenset[str]:
    return Metrics().sample_names()


def documented_settings() -> set[str]:
    return set(SETTING.findall((ROOT / ".env.example").read_text()))


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    mounts = []
    for volume in service.get("volumes", []):
        source, _, rest = volume.partition(":")
        if source.startswith((".", "/")):
            mounts.append((source, rest.split(":")[0]))
    return mounts


def host_file_for(service: dict[str, Any], container_path: str) -> Path | None:
    for source, target in bind_mounts(service):
        if container_path == target:
            return (DEPLOY / source).resolve()
        if container_path.startswith(target.rstrip("/") + "/"):
            return (DEPLOY / source / container_path[len(target.rstrip("/")) + 1 :]).resolve()
    return None


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


# --- docker-compose.yml ----------------------------------------------------------------------


def test_compose_has_every_service_of_the_stack(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "postgres",
        "rabbitmq",
        "odoo-init",
        "odoo",
        "n8n-import",
        "n8n",
        "migrate",
        "orchestrator",
        "notification-sink",
        "prometheus",
        "grafana",
        "minio",
        "minio-init",
    }
    assert expected <= set(services)
    assert services["odoo"]["image"] == "odoo:18"
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["n8n"]["image"].startswith("n8nio/n8n")
    assert services["minio"]["image"].startswith("minio/minio")


def test_the_orchestrator_stores_assets_in_the_compose_minio_bucket_it_creates(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["orchestrator"]["environment"]
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "9000:9000" in " ".join(services["minio"]["ports"])
    assert env["S3_PUBLIC_ENDPOINT_URL"].endswith(":9000}")
    init = " ".join(services["minio-init"]["command"])
    assert "mc mb --ignore-existing" in init and "$$S3_BUCKET" in init
    wanted = services["orchestrator"]["depends_on"]["minio-init"]
    assert wanted == {"condition": "service_completed_successfully"}
    # the bucket and MinIO's root user are the orchestrator's settings, defaults included
    assert services["minio"]["environment"]["MINIO_ROOT_USER"] == env["S3_ACCESS_KEY_ID"]
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == env["S3_SECRET_ACCESS_KEY"]
    assert services["minio-init"]["environment"]["S3_BUCKET"] == env["S3_BUCKET"]


def test_compose_references_only_files_that_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for source, _target in bind_mounts(service):
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            context = DEPLOY / build["context"]
            assert context.is_dir(), f"{name} builds from missing {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_migrations_run_to_completion_before_the_orchestrator(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["migrate"]["command"] == ["creativeflow", "migrate"]
    assert services["orchestrator"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["migrate"]["image"] == services["orchestrator"]["image"]
    assert services["migrate"]["environment"] == services["orchestrator"]["environment"]


def test_the_orchestrator_gets_only_documented_settings(
    services: dict[str, dict[str, Any]],
) -> None:
    documented = documented_settings()
    for name in ("orchestrator", "migrate"):
        environment = services[name]["environment"]
        assert isinstance(environment, dict)
        undocumented = set(environment) - documented
        assert not undocumented, f"{name} sets settings .env.example does not list: {undocumented}"


def test_odoo_runs_the_addon_from_the_repository(services: dict[str, dict[str, Any]]) -> None:
    for name in ("odoo", "odoo-init"):
        addons = host_file_for(services[name], "/mnt/extra-addons")
        assert addons == (ROOT / "odoo_contracts").resolve()
        assert (addons / "creativeflow_credits/__manifest__.py").is_file()
    init_script = host_file_for(services["odoo-init"], services["odoo-init"]["entrypoint"][-1])
    assert init_script is not None and init_script.is_file()
    text = init_script.read_text()
    assert "-i creativeflow_credits" in text and "-u creativeflow_credits" in text
    assert services["odoo"]["depends_on"]["odoo-init"] == {
        "condition": "service_completed_successfully"
    }


def test_n8n_imports_the_documented_workflow(services: dict[str, dict[str, Any]]) -> None:
    importer = services["n8n-import"]
    script = host_file_for(importer, importer["entrypoint"][-1])
    assert script is not None and script.is_file()
    text = script.read_text()
    imported = re.search(r'import:workflow --input="?([^"\s]+)/\$\{workflow\}', text)
    assert imported is not None
    folder = host_file_for(importer, imported.group(1))
    # one workflow per dispatch mode, each imported and activated by its id
    for name in ("creativeflow-generation.json", "creativeflow-generation-webhook.json"):
        assert folder is not None and (folder / name).resolve().is_file()
        workflow = json.loads((folder / name).read_text())
        assert f"workflow={name} id={workflow['id']}" in text
    assert '--id="${id}"' in text
    workflow = json.loads(WORKFLOW.read_text())
    trigger = next(n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.rabbitmqTrigger")
    assert trigger["credentials"]["rabbitmq"]["id"] in text
    assert services["n8n"]["depends_on"]["n8n-import"] == {
        "condition": "service_completed_successfully"
    }
    # the volume the import writes is the one n8n reads
    assert "n8n-data:/home/node/.n8n" in importer["volumes"]
    assert "n8n-data:/home/node/.n8n" in services["n8n"]["volumes"]


def test_the_callback_base_url_and_queue_match_what_n8n_uses(
    services: dict[str, dict[str, Any]],
) -> None:
    environment = services["orchestrator"]["environment"]
    assert environment["N8N_CALLBACK_BASE_URL"] == "http://orchestrator:8000"
    workflow = json.loads(WORKFLOW.read_text())
    queues = {
        n["parameters"]["queue"]
        for n in workflow["nodes"]
        if n["type"] == "n8n-nodes-base.rabbitmqTrigger"
    }
    assert queues == {
        environment["RABBITMQ_N8N_JOB_QUEUE"],
        environment["RABBITMQ_N8N_CANCEL_QUEUE"],
    }
    secret_variable = (
        next(n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.crypto")["parameters"][
            "secret"
        ]
        .removeprefix("={{ $env.")
        .removesuffix(" }}")
    )
    assert secret_variable in services["n8n"]["environment"]


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_the_orchestrator_and_loads_the_alerts(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_yaml(DEPLOY / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    creativeflow = jobs["creativeflow"]
    assert creativeflow["metrics_path"] == "/metrics"
    targets = [t for group in creativeflow["static_configs"] for t in group["targets"]]
    assert "orchestrator:8000" in targets
    prometheus = services["prometheus"]
    config_file = host_file_for(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_file == (DEPLOY / "prometheus.yml").resolve()
    for rule_file in config["rule_files"]:
        host = host_file_for(prometheus, rule_file)
        assert host is not None and host.is_file(), rule_file


def test_every_alert_asks_for_metrics_the_service_exposes(exposed: frozenset[str]) -> None:
    rules = [
        rule
        for group in load_yaml(DEPLOY / "prometheus/alerts.yml")["groups"]
        for rule in group["rules"]
    ]
    assert len(rules) >= 10
    for rule in rules:
        names = set(METRIC.findall(rule["expr"]))
        assert names or "up{" in rule["expr"], rule["alert"]
        assert names <= exposed, f"{rule['alert']}: {names - exposed}"
        assert rule["annotations"]["runbook"].startswith("docs/operations.md#")
    documented = (ROOT / "docs/operations.md").read_text()
    for rule in rules:
        assert f"### {rule['alert']}" in documented, f"docs/operations.md lacks {rule['alert']}"


# --- Grafana ---------------------------------------------------------------------------------


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    provisioning = host_file_for(grafana, "/etc/grafana/provisioning")
    assert provisioning is not None
    datasources = load_yaml(provisioning / "datasources/prometheus.yml")["datasources"]
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = load_yaml(provisioning / "dashboards/creativeflow.yml")["providers"]
    dashboards = host_file_for(grafana, providers[0]["options"]["path"])
    assert dashboards == DASHBOARD.parent.resolve()
    dashboard = json.loads(DASHBOARD.read_text())
    uid = datasources[0]["uid"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]


def test_every_panel_asks_for_metrics_the_service_exposes(exposed: frozenset[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    found = expressions(dashboard)
    assert found
    for title, expr in found:
        names = set(METRIC.findall(expr))
        assert names, f"panel {title!r} names no CreativeFlow metric"
        assert names <= exposed, f"panel {title!r}: {names - exposed}"


def test_the_dashboard_has_a_panel_for_every_metric(exposed: frozenset[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = {name for _, expr in expressions(dashboard) for name in METRIC.findall(expr)}
    families = {re.sub(r"_(bucket|count|sum|total|created)$", "", name) for name in exposed}
    used_families = {re.sub(r"_(bucket|count|sum|total|created)$", "", name) for name in used}
    assert families - used_families == set()


# --- the image -------------------------------------------------------------------------------


def test_the_image_installs_the_project_from_pyproject_as_ci_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    ci_install = (ROOT / "scripts/_env.sh").read_text()
    assert "requirements" not in dockerfile and "requirements" not in ci_install
    assert re.search(r"^COPY pyproject\.toml\b", dockerfile, re.MULTILINE)
    assert re.search(r"^COPY src \./src$", dockerfile, re.MULTILINE)
    assert re.search(r"^RUN .*\bpip install \.$", dockerfile, re.MULTILINE), "pip install ."
    assert re.search(r"pip install .*-e \"\.\[test\]\"", ci_install), "CI: pip install -e .[test]"
    assert (ROOT / ".ci/run").read_text().count("scripts/test") == 1
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = re.search(r"^FROM python:(\d+)\.(\d+)", dockerfile, re.MULTILINE)
    assert base is not None
    wanted = re.match(r">=(\d+)\.(\d+)", project["requires-python"])
    assert wanted is not None
    assert tuple(map(int, base.groups())) >= tuple(map(int, wanted.groups()))
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]}
    assert "prometheus-client" in names  # /metrics needs it in the image, not only in tests


def test_every_setting_is_documented_in_env_example() -> None:
    """A setting nobody can find is a setting nobody sets right: each one the service reads is
    in .env.example under the name it is read by (the first, for settings with aliases)."""
    from pydantic import AliasChoices

    from creativeflow.settings import Settings

    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            alias = alias.choices[0]
        if isinstance(alias, str):
            names.add(alias)
    assert names, "no setting names found: the check would pass vacuously"
    assert sorted(names - documented_settings()) == []


def test_every_document_the_docs_link_to_exists() -> None:
    """A link to a file that is not there sends a reader nowhere."""
    texts = [ROOT / ".env.example", ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for path in texts:
        for target in re.findall(r"(?:\(|\s)((?:\.\./|docs/)?[\w./-]+\.md)", path.read_text()):
            base = ROOT if target.startswith("docs/") or path.parent == ROOT else path.parent
            if not (base / target).resolve().exists():
                missing.append(f"{path.relative_to(ROOT)} -> {target}")
    assert missing == []
